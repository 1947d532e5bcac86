// Command sdctl registers and discovers services. See README.md.
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
	os.Exit(commands.Main(os.Args[1:], commands.Program{Builtins: backends, Bundled: builtin.Bundled()}))
}
