// Command sdctl-plugin-host is the part of sdctl that links go-plugin and gRPC. It ships beside
// the sdctl binary, which replaces itself with it (same arguments, same process) for the
// commands whose backend is an external plugin, which go-plugin starts. It also serves the
// built-in backends (`sdctl backend serve NAME`, which hosts run) and bridges external backends
// for programs that do not link go-plugin (`backend bridge NAME PATH`, which the watcher runs).
// It reads the same command line and configuration as sdctl; it is not meant to be run by hand.
package main

import (
	"os"

	"github.com/sdctl/sdctl/commands"
	"github.com/sdctl/sdctl/internal/builtin"
	"github.com/sdctl/sdctl/plugins"
)

func main() {
	backends := builtin.Backends()
	// Serving a built-in backend comes before any flag or config handling, so nothing can reach
	// stdout ahead of the plugin handshake.
	if code, ok := plugins.ServeBuiltin(os.Args[1:], backends); ok {
		os.Exit(code)
	}
	if code, ok := plugins.ServeBridge(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(commands.Main(os.Args[1:], commands.Program{
		Builtins:     backends,
		Bundled:      builtin.Bundled(),
		StartBackend: plugins.Start,
		Executable:   commands.InvokingSdctl(commands.PluginHostCommand),
	}))
}
