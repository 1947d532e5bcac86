package host

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/wire"
)

// EnvPrivateConn tells a backend process that the file descriptor it names is its one
// connection to the host (a private backend, see StartPrivate). Its presence switches Serve
// from the go-plugin handshake to the framed protocol on that connection.
const EnvPrivateConn = "SDCTL_PLUGIN_CONN_FD"

// PrivateConnFD is the file descriptor (the first of ExtraFiles) a private backend is given.
const PrivateConnFD = 3

// CanStartPrivate reports whether StartPrivate can start cand: a backend shipped with sdctl, on
// a platform with Unix socket pairs.
func (h *Host) CanStartPrivate(cand Candidate) bool { return PrivateSupported && cand.Trusted() }

// StartPrivate starts cand for one client, connected to it by a socket pair: nothing listens, so
// no other process can reach it, and no handshake is needed beyond the first call. The backend
// exits when the connection closes (Close, or this process's death), so it never outlives its
// client. Its log lines go to the host's logger. It is not configured yet: call Info, then
// Configure.
func (h *Host) StartPrivate(cand Candidate) (*Client, error) {
	if !h.CanStartPrivate(cand) {
		return nil, fmt.Errorf("backend %q: cannot be started over a socket pair", cand.Name)
	}
	return h.startPrivate(cand, cand.Command())
}

// EnvBridgeTimeout passes the host's plugin start timeout to a bridge (StartBridged).
const EnvBridgeTimeout = "SDCTL_PLUGIN_BRIDGE_TIMEOUT"

// CanBridge reports whether StartBridged can start cand: an external backend, on a platform
// with socket pairs, with the plugin host (BuiltinServer) there to bridge it.
func (h *Host) CanBridge(cand Candidate) bool {
	return PrivateSupported && !cand.Trusted() && !cand.Missing && cand.ShadowedBy == "" && h.builtinServer(h.Exe()) != ""
}

// StartBridged starts the external backend cand through the plugin host (BuiltinServer), which
// starts it with go-plugin (and mutual TLS) and passes the calls of a private connection on to
// it: a program that does not link go-plugin (the watcher) can use external backends that way.
// The bridge exits when the backend does, and the backend with the bridge.
func (h *Host) StartBridged(cand Candidate) (*Client, error) {
	if !h.CanBridge(cand) {
		return nil, fmt.Errorf("backend %q: cannot be bridged (is %s installed beside sdctl?)", cand.Name, filepath.Base(h.BuiltinServer))
	}
	cmd := exec.Command(h.builtinServer(h.Exe()), "backend", "bridge", cand.Name, cand.Path)
	cmd.Env = append(cmd.Environ(), EnvBridgeTimeout+"="+h.Timeout().String())
	return h.startPrivate(cand, cmd)
}

func (h *Host) startPrivate(cand Candidate, cmd *exec.Cmd) (*Client, error) {
	log := h.Log()
	cmd.Env = append(cmd.Environ(),
		EnvPrivateConn+"="+fmt.Sprint(PrivateConnFD),
		EnvLogLevel+"="+LevelName(log.GetLevel()),
		MagicCookieKey+"="+MagicCookieValue)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	log.Debug("starting plugin", "path", cmd.Path, "args", cmd.Args)
	conn, child, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", cand.Name, err)
	}
	cmd.ExtraFiles = []*os.File{child}
	OwnGroup(cmd)
	err = cmd.Start()
	child.Close()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s %q (%s) failed to start: %w", cand.kind(), cand.Name, cand.Path, err)
	}
	p := &privateProcess{cmd: cmd, cand: cand, log: log, exited: make(chan struct{})}
	p.starting.Store(true)
	p.relayed.Add(1)
	go p.relay(stderr)
	go func() {
		p.relayed.Wait() // Wait closes the pipe: read it to the end first
		err := cmd.Wait()
		close(p.exited)
		log.Debug("plugin process exited", "path", cmd.Path, "pid", cmd.Process.Pid, "error", err)
	}()
	wc := wire.NewClient(conn)
	p.conn = wc
	c := NewClient(cand, wire.ProtocolVersion, wire.NewRemote(wc), p, log)
	log.Debug("started a backend on a socket pair", "backend", cand.Name, "pid", cmd.Process.Pid)
	// The first call is the handshake: a backend that does not answer it within the start
	// timeout has failed to start. Its answer is kept, so the caller's Info costs nothing.
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout())
	defer cancel()
	if _, err := c.Info(ctx); err != nil {
		if !p.Exited() {
			KillGroup(cmd)
		}
		_ = wc.Close()
		<-p.exited
		switch {
		case errors.Is(err, ErrStartFailed):
			return nil, err
		case ctx.Err() != nil:
			return nil, p.failure("it did not answer in time (see --plugin-timeout)", nil)
		}
		return nil, p.failure("its first call failed: "+err.Error(), err)
	}
	log.Debug("using plugin", "backend", cand.Name, "pid", cmd.Process.Pid, "protocol", c.Protocol)
	return c, nil
}

// kind names the sort of backend in messages.
func (c Candidate) kind() string {
	switch {
	case c.Builtin:
		return "built-in backend"
	case c.Bundled:
		return "bundled backend"
	}
	return "backend plugin"
}

// privateProcess is a backend started by StartPrivate.
type privateProcess struct {
	cmd     *exec.Cmd
	cand    Candidate
	conn    *wire.Client
	log     hclog.Logger
	relayed sync.WaitGroup
	exited  chan struct{}
	// starting is set until the backend has been configured: its warnings are debug messages
	// until then, since a failed start is reported in one line (StartError).
	starting atomic.Bool

	mu   sync.Mutex
	last string
}

func (p *privateProcess) Pid() int { return p.cmd.Process.Pid }

func (p *privateProcess) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop closes the connection, which ends the backend once its running calls have returned, and
// kills it (with anything it started) if it has not exited after KillGrace.
func (p *privateProcess) Stop() error {
	_ = p.conn.Close()
	select {
	case <-p.exited:
	case <-time.After(KillGrace):
		p.log.Warn("backend did not stop in time; killing it", "backend", p.cand.Name, "pid", p.Pid())
		KillGroup(p.cmd)
		<-p.exited
	}
	if rss, ok := MaxRSS(p.cmd); ok {
		p.log.Debug("backend plugin stopped", "backend", p.cand.Name, "max_rss_kib", rss)
	}
	return nil
}

func (p *privateProcess) Starting() bool { return p.starting.Load() }

func (p *privateProcess) Started() { p.starting.Store(false) }

// StartError explains a call that failed before the backend was configured: the process could
// not run, died, or closed the connection.
func (p *privateProcess) StartError(err error) error {
	p.log.Debug("backend failed to start", "backend", p.cand.Name, "path", p.cand.Path, "error", err)
	if p.Exited() {
		return p.failure("it exited before it was configured", ErrPluginExited)
	}
	return p.failure("it closed the connection before it was configured", nil)
}

// failure is the one-line start error: what failed, msg, and the backend's last line on
// stderr.
func (p *privateProcess) failure(msg string, cause error) error {
	if line := p.lastLine(); line != "" {
		msg += fmt.Sprintf("; its last line on stderr: %q", line)
	}
	return StartError(p.cand, msg, cause)
}

// StartError is the one-line error of cand failing to start, msg saying how. It wraps
// ErrStartFailed and cause (when not nil).
func StartError(cand Candidate, msg string, cause error) error {
	e := &startFailure{msg: fmt.Sprintf("%s %q (%s) failed to start: %s (details: --log-level debug)", cand.kind(), cand.Name, cand.Path, msg),
		causes: []error{ErrStartFailed}}
	if cause != nil {
		e.causes = append(e.causes, cause)
	}
	return e
}

// startFailure is a start error: its message says it all, and it wraps what callers test for.
type startFailure struct {
	msg    string
	causes []error
}

func (e *startFailure) Error() string   { return e.msg }
func (e *startFailure) Unwrap() []error { return e.causes }

// lastLine is the last line the backend wrote on stderr (its message, for a log line).
func (p *privateProcess) lastLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// relay passes the backend's log lines (JSON, one per line, as plugins/logging writes them) to
// the host's logger at their own level; other lines are passed on as they are, at debug level.
func (p *privateProcess) relay(r io.Reader) {
	defer p.relayed.Done()
	log := p.log.Named(p.cand.Name)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		level, msg, args := parseLogLine(line)
		if level >= hclog.Warn && p.starting.Load() {
			level = hclog.Debug
		}
		short := msg
		if len(short) > 300 {
			short = short[:300]
		}
		p.mu.Lock()
		p.last = short
		p.mu.Unlock()
		log.Log(level, msg, args...)
	}
	_, _ = io.Copy(io.Discard, r)
}

// parseLogLine reads one of a backend's JSON log lines: its level, message and other fields.
// A line that is not one is a debug message of its own.
func parseLogLine(line string) (hclog.Level, string, []any) {
	var entry map[string]any
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &entry) != nil {
		return hclog.Debug, line, nil
	}
	level := hclog.LevelFromString(fmt.Sprint(entry["@level"]))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	msg := fmt.Sprint(entry["@message"])
	args := make([]any, 0, 2*len(entry))
	for _, k := range slices.Sorted(maps.Keys(entry)) {
		if strings.HasPrefix(k, "@") {
			continue
		}
		args = append(args, k, entry[k])
	}
	return level, msg, args
}

var _ Starter = (*privateProcess)(nil)
