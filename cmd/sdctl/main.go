// Command sdctl registers and discovers services. See README.md.
//
// It links only what its everyday commands use: the command line, the configuration and the
// client of warm backends (plugins/host, plugins/wire). Backends run in their own processes;
// sdctl-plugin-host serves the built-in ones and runs the commands whose backend go-plugin
// must start, and sdctl-watch runs `sdctl watch` (see docs/concepts.md, "Plugins").
package main

import (
	"os"

	"github.com/sdctl/sdctl/commands"
	"github.com/sdctl/sdctl/internal/builtin"
)

func main() {
	// Serving a built-in backend comes before any flag or config handling, so nothing can reach
	// stdout ahead of the plugin handshake.
	if code, ok := commands.ServeElsewhere(os.Args[1:], ""); ok {
		os.Exit(code)
	}
	os.Exit(commands.Main(os.Args[1:], commands.Program{Builtins: builtin.Backends(), Bundled: builtin.Bundled()}))
}
