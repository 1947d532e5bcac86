package plugins

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/host"
)

// startLogger passes log messages on to the host's logger, except while its plugin is still
// starting: go-plugin's own warnings and errors (and the plugin's) become debug messages then,
// because a failed start is reported as one error line (startError) and these are its details,
// shown with --log-level debug.
type startLogger struct {
	hclog.Logger
	starting *atomic.Bool
}

func newStartLogger(l hclog.Logger) startLogger {
	s := startLogger{Logger: l, starting: new(atomic.Bool)}
	s.starting.Store(true)
	return s
}

// started ends the quiet period: from now on messages keep their level.
func (l startLogger) started() { l.starting.Store(false) }

func (l startLogger) level(level hclog.Level) hclog.Level {
	if level >= hclog.Warn && l.starting.Load() {
		return hclog.Debug
	}
	return level
}

func (l startLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(l.level(level), msg, args...)
}
func (l startLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l startLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l startLogger) With(args ...any) hclog.Logger {
	return startLogger{Logger: l.Logger.With(args...), starting: l.starting}
}

func (l startLogger) Named(name string) hclog.Logger {
	return startLogger{Logger: l.Logger.Named(name), starting: l.starting}
}

func (l startLogger) ResetNamed(name string) hclog.Logger {
	return startLogger{Logger: l.Logger.ResetNamed(name), starting: l.starting}
}

var _ hclog.Logger = startLogger{}

// lastLine keeps the last non-empty line written to it (a plugin's stderr), for the one-line
// start error.
type lastLine struct {
	mu   sync.Mutex
	cur  []byte
	last string
}

func (w *lastLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range p {
		if c != '\n' {
			if len(w.cur) < 200 {
				w.cur = append(w.cur, c)
			}
			continue
		}
		if line := string(bytes.TrimSpace(w.cur)); line != "" {
			w.last = line
		}
		w.cur = w.cur[:0]
	}
	return len(p), nil
}

func (w *lastLine) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if line := string(bytes.TrimSpace(w.cur)); line != "" {
		return line
	}
	return w.last
}

// startError turns go-plugin's start failure (up to 15 lines of advice) into one line: what
// failed, the likely reason, and the plugin's last line on stderr. The full text is logged at
// debug level.
func (p *process) startError(err error) error {
	p.log.Debug("backend plugin failed to start", "backend", p.cand.Name, "path", p.cand.Path, "error", err)
	full := err.Error()
	msg, _, _ := strings.Cut(full, "\n")
	msg = strings.TrimSpace(msg)
	switch {
	case strings.Contains(full, "Unrecognized remote plugin message"):
		msg = fmt.Sprintf("it did not answer the plugin handshake (is it an sdctl backend speaking protocol %d?)", ProtocolVersion)
	case strings.Contains(full, "timeout while waiting for plugin to start"):
		msg = "it did not answer the plugin handshake in time (see --plugin-timeout)"
	case strings.Contains(full, "incompatible"):
		msg += fmt.Sprintf(" (is it an sdctl backend speaking protocol %d?)", ProtocolVersion)
	}
	return p.failed(msg, nil)
}

// StartError explains a call that failed after the handshake but before the backend was
// configured: the process died (killed, crashed) or cannot be reached.
func (p *process) StartError(err error) error {
	p.log.Debug("backend plugin failed to start", "backend", p.cand.Name, "path", p.cand.Path, "error", err)
	if p.Exited() {
		return p.failed("it exited before it was configured", host.ErrPluginExited)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return p.failed("its first calls failed: "+strings.TrimSpace(msg), err)
}

// failed is the one-line start error: what failed, msg, and the plugin's last line on stderr.
// It wraps host.ErrStartFailed and cause (when not nil).
func (p *process) failed(msg string, cause error) error {
	if line := p.stderr.String(); line != "" {
		msg += fmt.Sprintf("; its last line on stderr: %q", line)
	}
	return host.StartError(p.cand, msg, cause)
}
