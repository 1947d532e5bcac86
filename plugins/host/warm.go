package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// DefaultIdleTimeout is how long a warm backend waits for the next command.
const DefaultIdleTimeout = time.Minute

// CanWarm reports whether Attach may keep cand warm: the host has an idle timeout, the platform
// can check a peer's user, mutual TLS was not asked for, and the backend is built in or shipped
// with sdctl (an external plugin keeps go-plugin's lifecycle and AutoMTLS).
func (h *Host) CanWarm(cand Candidate) bool {
	return WarmSupported && h.IdleTimeout > 0 && !h.BuiltinMTLS && cand.Trusted()
}

// WarmUsable reports why warm backends cannot be used at all for this user (the runtime
// directory is not private, say), or nil: CanWarm says whether one backend may be kept warm.
func (h *Host) WarmUsable() error {
	if err := privateDir(h.runtimeDir()); err != nil {
		return fmt.Errorf("%w: %v", ErrWarmUnavailable, err)
	}
	return nil
}

// Attach returns a configured client of a warm backend for cand and section, starting one when
// none runs (see docs/concepts.md, "Warm backends"). Only one process starts one (a lock per
// key); a backend that died, hangs or serves another build is replaced. Close detaches.
func (h *Host) Attach(ctx context.Context, cand Candidate, section map[string]any) (*Client, error) {
	if err := h.WarmUsable(); err != nil {
		return nil, err
	}
	dir := h.runtimeDir()
	env := warmEnv(os.Environ())
	key, err := warmKey(cand, h.Exe(), section, env)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, cand.Name+"-"+key+warmSockSuffix)
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("%w: socket path %s is longer than %d bytes", ErrWarmUnavailable, sock, maxSocketPath)
	}
	log := h.Log()

	c, err := h.dialWarm(ctx, cand, sock, section)
	if err == nil || !errors.Is(err, errWarmUnusable) {
		return c, err
	}
	log.Debug("no usable warm backend", "backend", cand.Name, "reason", err)
	lockPath := strings.TrimSuffix(sock, warmSockSuffix) + ".lock"
	lctx, cancel := context.WithTimeout(ctx, h.Timeout()+KillGrace)
	defer cancel()
	for {
		lock := flock.New(lockPath, flock.SetPermissions(0o600))
		ok, err := lock.TryLock()
		if err != nil {
			return nil, fmt.Errorf("backend %q: start lock: %w", cand.Name, err)
		}
		if ok {
			c, err := h.startLocked(ctx, cand, sock, section, env)
			_ = lock.Close()
			return c, err
		}
		// Another command is starting this backend: wait for it in the kernel (a shared lock
		// is granted when the starter releases its exclusive one), then connect like the rest.
		if err := waitUnlocked(lctx, lockPath); err != nil {
			return nil, fmt.Errorf("backend %q: wait for another sdctl starting it: %w", cand.Name, err)
		}
		if c, err = h.dialWarm(ctx, cand, sock, section); err == nil || !errors.Is(err, errWarmUnusable) {
			return c, err
		}
	}
}

// startLocked starts the warm backend at sock unless another command did it meanwhile. The
// caller holds the start lock.
func (h *Host) startLocked(ctx context.Context, cand Candidate, sock string, section map[string]any, env []string) (*Client, error) {
	c, err := h.dialWarm(ctx, cand, sock, section)
	if err == nil || !errors.Is(err, errWarmUnusable) {
		return c, err
	}
	h.retire(sock)
	if err := h.startWarm(cand, sock, env); err != nil {
		return nil, err
	}
	c, err = h.dialWarm(ctx, cand, sock, section)
	if errors.Is(err, errWarmUnusable) {
		return nil, fmt.Errorf("backend %q started but does not answer: %w", cand.Name, err)
	}
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		// A bad config: nothing else will use this backend.
		h.retire(sock)
	}
	return c, err
}

// waitUnlocked returns once no process holds the lock at path exclusively.
func waitUnlocked(ctx context.Context, path string) error {
	done := make(chan error, 1)
	go func() {
		l := flock.New(path, flock.SetFlag(os.O_RDONLY))
		err := l.RLock()
		_ = l.Close()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrWarmUnavailable is returned by Attach when no warm backend can be used at all (the
// runtime directory is not private, say): the caller starts a backend for this command only.
var ErrWarmUnavailable = errors.New("warm backends unavailable")

// maxSocketPath is the longest Unix socket path that works everywhere (Linux allows 107 bytes,
// macOS 103).
const maxSocketPath = 103

// errWarmUnusable marks a warm backend that is absent, dead, hung or of another kind: the
// host starts a new one.
var errWarmUnusable = errors.New("no usable warm backend")

// dialWarm connects to the warm backend at sock and makes sure it is configured with section.
func (h *Host) dialWarm(ctx context.Context, cand Candidate, sock string, section map[string]any) (*Client, error) {
	conn, pid, err := dialPeer(ctx, sock, h.Timeout())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errWarmUnusable, err)
	}
	wc := wire.NewClient(conn)
	gc := wire.NewRemote(wc)
	c := &Client{Registry: gc, Candidate: cand, Protocol: wire.ProtocolVersion, log: h.Log(), warm: &warmConn{conn: wc, pid: pid, sock: sock}}
	gc.TransportErr = c.transportError
	raw, err := wire.EncodeSection(section)
	if err != nil {
		_ = wc.Close()
		return nil, err
	}
	// A backend that does not answer Info quickly hangs: it is replaced. Its answer also says
	// whether it is configured with this section already (the usual case: the section is part
	// of the socket's name), which spares a Configure call.
	ictx, cancel := context.WithTimeout(ctx, h.Timeout())
	defer cancel()
	configured, err := gc.ConfiguredWith(ictx, raw)
	if err != nil {
		_ = wc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: info: %v", errWarmUnusable, err)
	}
	if configured {
		return c, nil
	}
	if err := gc.ConfigureRaw(ctx, raw); err != nil {
		_ = wc.Close()
		// The backend's own verdict on the config (invalid, unreachable registry, refused
		// credentials) is the command's answer; anything else means this process is unusable.
		if !isDomainError(err) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: configure: %v", errWarmUnusable, err)
		}
		return nil, err
	}
	return c, nil
}

// isDomainError reports whether err carries one of the registry's sentinels, as the errors a
// backend returns do once translated from gRPC.
func isDomainError(err error) bool {
	for _, kind := range []error{registry.ErrInvalid, registry.ErrUnsupported, registry.ErrPermissionDenied,
		registry.ErrUnavailable, registry.ErrNotFound, registry.ErrNoLeader, registry.ErrAlreadyExists} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// dialPeer connects to the Unix socket at sock and checks that the process listening there runs
// as this user (SO_PEERCRED); it returns that process's ID.
func dialPeer(ctx context.Context, sock string, timeout time.Duration) (net.Conn, int, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, 0, err
	}
	pid, uid, err := PeerCred(conn)
	if err == nil && uid != os.Geteuid() {
		err = fmt.Errorf("%s is served by user %d, not by this user", sock, uid)
	}
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	return conn, pid, nil
}

// retire stops whatever listens on sock (it is unusable) and removes the socket. The caller
// holds the start lock.
func (h *Host) retire(sock string) {
	if conn, pid, err := dialPeer(context.Background(), sock, 100*time.Millisecond); err == nil {
		conn.Close()
		h.Log().Debug("stopping an unusable warm backend", "socket", sock, "pid", pid)
		stopPid(pid)
	}
	_ = os.Remove(sock)
}

// stopPid asks pid to stop (SIGTERM), then kills it if it is still there after KillGrace.
func stopPid(pid int) {
	if pid <= 0 || signalPid(pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(KillGrace)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if alive(pid) {
		_ = signalPid(pid, syscall.SIGKILL)
	}
}

// startWarm starts cand as a warm backend listening on sock, detached from this process: its own
// session, stdin from /dev/null, stdout and stderr appended to its log file, so a caller that
// waits for sdctl's output pipes to close never waits for the backend. It returns once the
// backend listens.
func (h *Host) startWarm(cand Candidate, sock string, env []string) error {
	logPath, logFile, err := h.openWarmLog(cand.Name)
	if err != nil {
		return fmt.Errorf("backend %q: open its log: %w", cand.Name, err)
	}
	defer logFile.Close()
	readR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readR.Close()
	cmd := cand.Command()
	cmd.Env = append(env,
		EnvWarmSocket+"="+sock,
		EnvWarmIdle+"="+h.IdleTimeout.String(),
		EnvLogLevel+"="+LevelName(h.Log().GetLevel()),
		MagicCookieKey+"="+MagicCookieValue)
	cmd.Dir, _ = os.Getwd()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{readyW}
	detach(cmd)
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("backend %q (%s) failed to start: %w", cand.Name, cand.Path, err)
	}
	go func() { _ = cmd.Wait() }() // reaps it if it exits while this process lives
	h.Log().Debug("started a warm backend", "backend", cand.Name, "pid", cmd.Process.Pid, "socket", sock, "log", logPath)

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(readR).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s == "ready\n" {
			return nil
		}
		return fmt.Errorf("backend %q (%s) failed to start%s (log: %s)", cand.Name, cand.Path, lastLogLine(logPath), logPath)
	case <-time.After(h.Timeout()):
		_ = cmd.Process.Kill()
		return fmt.Errorf("backend %q (%s) failed to start: it did not listen in time (see --plugin-timeout; log: %s)", cand.Name, cand.Path, logPath)
	}
}

// warmLogLimit is the size past which a warm backend's log is rotated (one old file is kept).
const warmLogLimit = 1 << 20

func (h *Host) openWarmLog(name string) (string, *os.File, error) {
	dir := h.LogDir
	if dir == "" {
		dir = filepath.Join(h.runtimeDir(), "log")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "backend-"+name+".log")
	if fi, err := os.Stat(path); err == nil && fi.Size() > warmLogLimit {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	return path, f, err
}

// lastLogLine returns ": " and the last line of the log file, or "".
func lastLogLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		_, last, _ = parseLogLine(last)
		if len(last) > 300 {
			last = last[:300]
		}
		return fmt.Sprintf("; its last log line: %q", last)
	}
	return ""
}

// Warm lists the warm backends running for this user (name "" = all).
func (h *Host) Warm(name string) []WarmBackend {
	var out []WarmBackend
	for _, sock := range warmSockets(h.runtimeDir(), name) {
		conn, pid, err := dialPeer(context.Background(), sock, 200*time.Millisecond)
		if err != nil {
			continue
		}
		conn.Close()
		n, _ := warmSocketName(filepath.Base(sock))
		since := ""
		if fi, err := os.Stat(sock); err == nil {
			since = fi.ModTime().UTC().Format(time.RFC3339)
		}
		out = append(out, WarmBackend{Name: n, Pid: pid, Socket: sock, Since: since})
	}
	return out
}

// StopWarm stops the warm backends of this user (name "" = all) and returns those it stopped.
// Sockets left by dead backends are removed.
func (h *Host) StopWarm(name string) []WarmBackend {
	running := h.Warm(name)
	for _, w := range running {
		stopPid(w.Pid)
	}
	for _, sock := range warmSockets(h.runtimeDir(), name) {
		if conn, _, err := dialPeer(context.Background(), sock, 100*time.Millisecond); err == nil {
			conn.Close()
			continue
		}
		_ = os.Remove(sock)
	}
	return running
}

func (h *Host) runtimeDir() string {
	if h.RuntimeDir != "" {
		return h.RuntimeDir
	}
	return DefaultRuntimeDir()
}

// warmConn is a client's connection to a warm backend.
type warmConn struct {
	conn *wire.Client
	pid  int
	sock string
}
