//go:build !unix

package main

import (
	"github.com/sdctl/sdctl/internal/bundled/consulplugin"
	"github.com/sdctl/sdctl/plugins"
)

// Elsewhere sdctl starts every backend with go-plugin.
func main() { plugins.Serve(consulplugin.Backend()) }
