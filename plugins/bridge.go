package plugins

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/server"
	"github.com/sdctl/sdctl/plugins/wire"
)

// ServeBridge handles `backend bridge NAME PATH` (args are os.Args[1:]), which a host runs
// through host.Host.StartBridged: it starts the external backend at PATH with go-plugin and
// passes the calls of its private connection (host.EnvPrivateConn) on to it, until either side
// ends. Call it first thing in main. It reports whether it handled the invocation and the exit
// code to use.
func ServeBridge(args []string) (code int, handled bool) {
	if len(args) < 2 || args[0] != "backend" || args[1] != "bridge" {
		return 0, false
	}
	fd, err := strconv.Atoi(os.Getenv(host.EnvPrivateConn))
	if len(args) != 4 || err != nil || fd < 0 {
		fmt.Fprintln(os.Stderr, "usage: sdctl backend bridge NAME PATH (sdctl starts this itself)")
		return 2, true
	}
	// The backend inherits this environment: it must not take the connection for its own.
	_ = os.Unsetenv(host.EnvPrivateConn)
	log := logging.NewJSON(os.Stderr, server.LogLevel())
	timeout, _ := time.ParseDuration(os.Getenv(host.EnvBridgeTimeout))
	h := &host.Host{Logger: log, StartTimeout: timeout}
	client, err := Start(h, host.Candidate{Name: args[2], Path: args[3]})
	if err != nil {
		log.Error(err.Error())
		return 1, true
	}
	defer client.Close()
	f := os.NewFile(uintptr(fd), "host")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		log.Error("connection from the host", "error", err)
		return 1, true
	}
	// The host sees the backend's death as the end of this connection.
	go func() {
		for !client.Exited() {
			time.Sleep(100 * time.Millisecond)
		}
		_ = conn.Close()
	}()
	if err := wire.Serve(conn, client.Registry.(*wire.Remote).API()); err != nil {
		log.Debug("connection ended", "error", err)
	}
	return 0, true
}
