package plugins

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-plugin"

	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/server"
	"github.com/sdctl/sdctl/plugins/wire"
)

// Serve runs b as a plugin process: it performs the go-plugin handshake on stdout and answers the
// host's calls until the host stops it. Call it from the main function of an external backend
// (an executable named sdctl-backend-NAME); nothing may write to stdout before it.
func Serve(b Backend) {
	if _, ok := server.Run(b); ok { // started warm or on a socket pair by sdctl
		return
	}
	log := logging.NewJSON(os.Stderr, server.LogLevel())
	go exitWithParent(log)

	var srv *wire.Server
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: versionedPlugins(b, logging.Slog(log), &srv),
		GRPCServer:       newGRPCServer,
		Logger:           log,
	})
	if srv != nil {
		if err := srv.Close(); err != nil {
			log.Warn("closing backend", "error", err)
		}
	}
}

// ServeBuiltin serves a built-in backend when args (os.Args[1:]) are `backend serve NAME`, the
// hidden command sdctl runs in its own plugin subprocesses. Call it first thing in main, before
// any flag parsing or configuration that could print to stdout. It reports whether it handled
// the invocation and the exit code to use.
func ServeBuiltin(args []string, builtins []Backend) (code int, handled bool) {
	if len(args) < 2 || args[0] != "backend" || args[1] != "serve" {
		return 0, false
	}
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sdctl backend serve NAME (sdctl starts this itself)")
		return 2, true
	}
	for _, b := range builtins {
		if b.Name == args[2] {
			Serve(b)
			return 0, true
		}
	}
	fmt.Fprintf(os.Stderr, "sdctl backend serve: no built-in backend named %q\n", args[2])
	return 2, true
}

// LimitMemory gives a long-running process a soft memory limit that follows its live heap (see
// server.LimitMemory).
func LimitMemory() { server.LimitMemory() }
