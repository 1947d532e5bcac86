// Package server runs a backend process the way sdctl starts the backends it ships: warm, on a
// Unix socket that later commands reattach to, or private, on a socket pair to the one host that
// started it (see docs/concepts.md, "Plugins"). It links neither go-plugin nor gRPC, so the
// bundled backends stay small; plugins.Serve adds go-plugin's handshake for external plugins.
package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/wire"
)

// Run serves b when the host started this process as a warm or private backend (its
// environment says so), and reports whether it did and the exit code to use; handled false
// means the host expects another protocol (go-plugin's handshake).
func Run(b wire.Backend) (code int, handled bool) {
	level := LogLevel()
	if fd := os.Getenv(host.EnvPrivateConn); fd != "" && host.PrivateSupported {
		return servePrivateMain(b, fd, level), true
	}
	if path := os.Getenv(host.EnvWarmSocket); path != "" && host.WarmSupported {
		serveWarmMain(b, path, level)
		return 0, true
	}
	return 0, false
}

// LogLevel is the log level the host passed to this backend process (EnvLogLevel), warn when
// it passed none.
func LogLevel() hclog.Level {
	level, err := logging.ParseLevel(os.Getenv(host.EnvLogLevel))
	if err != nil {
		return hclog.Warn
	}
	return level
}

// Main is the body of the main function of a backend that only sdctl starts: it serves b
// (Run), or says that the program is not meant to be run by hand. It returns the exit code.
func Main(b wire.Backend) int {
	if code, ok := Run(b); ok {
		return code
	}
	name := filepath.Base(os.Args[0])
	fmt.Fprintf(os.Stderr, "%s: sdctl starts this backend itself; it is not meant to be run by hand\n", name)
	return 2
}

// servePrivateMain serves b on the connection the host passed as file descriptor fd until the
// host closes it (or dies), then closes the backend. It logs to stderr, which the host reads,
// and returns the exit code.
func servePrivateMain(b wire.Backend, fd string, level hclog.Level) int {
	log := logging.NewJSON(os.Stderr, level)
	n, err := strconv.Atoi(fd)
	if err != nil || n < 0 {
		log.Error("private backend: bad " + host.EnvPrivateConn)
		return 2
	}
	if err := servePrivate(b, os.NewFile(uintptr(n), "host"), log); err != nil {
		log.Error("private backend failed", "error", err)
		return 1
	}
	return 0
}
