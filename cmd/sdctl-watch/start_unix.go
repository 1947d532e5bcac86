//go:build unix

package main

import "github.com/sdctl/sdctl/plugins/host"

// startBackend is nil on Unix: backends shipped with sdctl are started over a socket pair and
// external ones through the plugin host's bridge (commands.Factory).
var startBackend func(*host.Host, host.Candidate) (*host.Client, error)
