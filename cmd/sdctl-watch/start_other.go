//go:build !unix

package main

import "github.com/sdctl/sdctl/plugins"

// startBackend starts every backend with go-plugin where socket pairs are missing.
var startBackend = plugins.Start
