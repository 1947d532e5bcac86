package server

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/wire"
)

// serveWarm runs b as a warm backend on the Unix socket at path until it has had no connection
// for idle, its executable is replaced, or it receives SIGTERM or SIGINT.
func serveWarm(b wire.Backend, path string, idle time.Duration, log hclog.Logger) error {
	ready := os.NewFile(host.WarmReadyFD, "ready") // closed right after, so nothing of the host stays open here
	defer func() {
		if ready != nil {
			ready.Close()
		}
	}()
	exe, _ := os.Executable()
	exeID := host.FileIdentity(exe)

	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	sockID := host.FileIdentity(path)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	wl := &warmListener{Listener: ln, uid: os.Geteuid(), log: log, lastActive: time.Now(), conns: map[*countedConn]struct{}{}}
	srv := wire.NewServer(b, logging.Slog(log))
	srv.Warm = true
	srv.OnWatch = LimitMemory
	var serving sync.WaitGroup
	served := make(chan error, 1)
	go func() {
		for {
			conn, err := wl.Accept()
			if err != nil {
				served <- err
				return
			}
			serving.Add(1)
			go func() {
				defer serving.Done()
				if err := wire.Serve(conn, srv); err != nil {
					log.Debug("connection ended", "error", err)
				}
			}()
		}
	}()
	log.Info("warm backend listening", "backend", b.Name, "socket", path, "idle_timeout", idle.String())
	if ready != nil {
		_, _ = ready.Write([]byte("ready\n"))
		ready.Close()
		ready = nil
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	tick := time.NewTicker(max(min(idle/10, time.Second), 10*time.Millisecond))
	defer tick.Stop()
	reason := ""
	for reason == "" {
		select {
		case sig := <-sigs:
			reason = "received " + sig.String()
		case err := <-served:
			reason = fmt.Sprintf("server ended: %v", err)
		case <-tick.C:
			replaced := exe != "" && host.FileIdentity(exe) != exeID
			if wl.closeIfIdle(idle, replaced) {
				reason = "idle for " + idle.String()
				if replaced {
					reason = "its executable was replaced"
				}
			}
		}
	}
	log.Info("warm backend stopping", "backend", b.Name, "reason", reason)
	// Commands still connected finish their calls (up to host.KillGrace), then lose the connection.
	wl.closeIfIdle(0, true)
	_ = ln.Close()
	stopped := make(chan struct{})
	go func() { serving.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(host.KillGrace):
		wl.closeAll()
		<-stopped
	}
	// A replacement may already listen on the same path (after it found this process hung):
	// remove the socket only if it is still the one this process created.
	if host.FileIdentity(path) == sockID {
		_ = os.Remove(path)
	}
	return srv.Close()
}

// warmListener accepts connections from this user only (SO_PEERCRED) and counts the open
// ones, so the backend knows when it is idle.
type warmListener struct {
	net.Listener
	uid int
	log hclog.Logger

	mu         sync.Mutex
	conns      map[*countedConn]struct{}
	closing    bool
	lastActive time.Time
}

func (l *warmListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		pid, uid, err := host.PeerCred(conn)
		if err != nil || uid != l.uid {
			l.log.Warn("refused a connection from another user", "peer_pid", pid, "peer_uid", uid, "error", err)
			conn.Close()
			continue
		}
		l.mu.Lock()
		if l.closing {
			// Lost the race with the idle timeout: the host sees the connection close before
			// its first answer and starts a new backend.
			l.mu.Unlock()
			conn.Close()
			continue
		}
		c := &countedConn{Conn: conn, l: l}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, nil
	}
}

// closeIfIdle stops accepting connections and reports true when none is open and the last one
// closed at least idle ago (or at once when now is set).
func (l *warmListener) closeIfIdle(idle time.Duration, now bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return true
	}
	if len(l.conns) > 0 || (!now && time.Since(l.lastActive) < idle) {
		return false
	}
	l.closing = true
	return true
}

// closeAll closes the connections still open.
func (l *warmListener) closeAll() {
	l.mu.Lock()
	conns := make([]*countedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type countedConn struct {
	net.Conn
	l    *warmListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.lastActive = time.Now()
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// serveWarmMain serves b in warm mode: it logs to stderr (a file the host opened).
func serveWarmMain(b wire.Backend, path string, level hclog.Level) {
	log := logging.NewJSON(os.Stderr, level).With("pid", os.Getpid())
	idle, err := time.ParseDuration(os.Getenv(host.EnvWarmIdle))
	if err != nil || idle <= 0 {
		log.Error("warm backend needs a positive " + host.EnvWarmIdle)
		return
	}
	if err := serveWarm(b, path, idle, log); err != nil {
		log.Error("warm backend failed", "error", err)
	}
}
