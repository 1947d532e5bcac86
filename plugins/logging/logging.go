// Package logging builds sdctl's stderr logger. One hclog logger carries sdctl's own messages,
// go-plugin's, and the lines a backend plugin writes, at the level the user picked; Slog adapts
// it to log/slog for code (backends) that should not depend on hclog.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Levels lists the accepted --log-level values, quietest last.
var Levels = []string{"trace", "debug", "info", "warn", "error", "off"}

// ParseLevel checks a --log-level value.
func ParseLevel(s string) (hclog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return hclog.Trace, nil
	case "debug":
		return hclog.Debug, nil
	case "info":
		return hclog.Info, nil
	case "warn", "warning":
		return hclog.Warn, nil
	case "error":
		return hclog.Error, nil
	case "off":
		return hclog.Off, nil
	}
	return hclog.NoLevel, fmt.Errorf("unknown log level %q (one of %s)", s, strings.Join(Levels, ", "))
}

// New returns a human-readable logger named "sdctl" writing to w at level.
func New(w io.Writer, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "sdctl", Level: level, Output: w, Color: hclog.ColorOff})
}

// NewJSON returns a logger writing hclog's JSON lines, the format go-plugin parses when it
// forwards a plugin's stderr into the host's logger with level and fields intact.
func NewJSON(w io.Writer, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: level, Output: w, JSONFormat: true})
}

// Slog adapts an hclog logger to log/slog.
func Slog(l hclog.Logger) *slog.Logger {
	return slog.New(&handler{l: l})
}

type handler struct {
	l      hclog.Logger
	group  string
	prefix []any
}

func (h *handler) Enabled(_ context.Context, lvl slog.Level) bool {
	return h.l.GetLevel() != hclog.Off && toHclog(lvl) >= h.l.GetLevel()
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	args := append([]any(nil), h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		args = append(args, h.key(a.Key), a.Value.Resolve().Any())
		return true
	})
	h.l.Log(toHclog(r.Level), r.Message, args...)
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.prefix = append([]any(nil), h.prefix...)
	for _, a := range attrs {
		n.prefix = append(n.prefix, h.key(a.Key), a.Value.Resolve().Any())
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	n := *h
	n.group = h.key(name)
	return &n
}

func (h *handler) key(k string) string {
	if h.group == "" {
		return k
	}
	return h.group + "." + k
}

func toHclog(l slog.Level) hclog.Level {
	switch {
	case l < slog.LevelDebug:
		return hclog.Trace
	case l < slog.LevelInfo:
		return hclog.Debug
	case l < slog.LevelWarn:
		return hclog.Info
	case l < slog.LevelError:
		return hclog.Warn
	default:
		return hclog.Error
	}
}
