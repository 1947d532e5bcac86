package server

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/wire"
)

// servePrivate answers the host's calls on f, a socket, until the host closes it or this
// process receives SIGTERM or SIGINT; calls still running are cancelled then.
func servePrivate(b wire.Backend, f *os.File, log hclog.Logger) error {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("connection from the host: %w", err)
	}
	srv := wire.NewServer(b, logging.Slog(log))
	srv.OnWatch = LimitMemory // a process that serves a watch stays up
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		if sig, ok := <-sigs; ok {
			log.Info("stopping", "reason", "received "+sig.String())
			_ = conn.Close()
		}
	}()
	err = wire.Serve(conn, srv)
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return err
}
