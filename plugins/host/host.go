package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// ExternalPrefix starts the file name of every external backend executable.
const ExternalPrefix = "sdctl-backend-"

// DefaultStartTimeout bounds the wait for a plugin's handshake.
const DefaultStartTimeout = 5 * time.Second

// Host finds, starts and configures backend plugins.
type Host struct {
	// Builtins are served by re-running Executable as `backend serve NAME`.
	Builtins []wire.Backend
	// Bundled are the backends shipped with sdctl as their own executables, found only in the
	// directory of Executable.
	Bundled []BundledBackend
	// Dirs are searched in order for sdctl-backend-NAME executables.
	Dirs []string
	// Executable is sdctl's own binary; empty means os.Executable().
	Executable string
	// Logger receives go-plugin's messages and the plugin's own log lines. Its level is passed on
	// to the plugin.
	Logger hclog.Logger
	// StartTimeout bounds the handshake; zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// BuiltinMTLS turns on go-plugin's automatic mutual TLS for built-in backends too. External
	// backends always use it. See docs/security.md for why built-ins default to off.
	BuiltinMTLS bool
	// IdleTimeout keeps built-in and bundled backends warm between commands for this long (see
	// Attach); zero starts and stops one per command.
	IdleTimeout time.Duration
	// RuntimeDir holds warm backends' sockets; empty means DefaultRuntimeDir().
	RuntimeDir string
	// BuiltinServer is the program that serves the built-in backends, when it is not
	// Executable (which then hands `backend serve NAME` to it): sdctl passes the
	// sdctl-plugin-host beside it, so that starting a built-in backend costs one process start.
	// It is used only when it is there.
	BuiltinServer string
	// LogDir receives warm backends' logs (sdctl passes $XDG_STATE_HOME/sdctl); empty means
	// a "log" directory in RuntimeDir.
	LogDir string
}

// BundledBackend is a backend shipped with sdctl as its own executable, sdctl-backend-NAME in
// the directory of the sdctl binary (so a command links and initialises only the backend it
// uses). The host knows its options without starting it and trusts it like a built-in one: no
// mutual TLS, and it may be kept warm. Its name is never looked up anywhere else while it is
// there; when it is missing, an external backend of that name on the plugin path is used as
// any external one.
type BundledBackend struct {
	Name    string
	Options []registry.Option
}

// BundledPath is where the bundled backend name is expected beside the executable exe.
func BundledPath(exe, name string) string {
	file := ExternalPrefix + name
	if runtime.GOOS == "windows" {
		file += ".exe"
	}
	return filepath.Join(filepath.Dir(exe), file)
}

// Candidate is a backend the host can start.
type Candidate struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Builtin bool   `json:"builtin"`
	// Bundled is set on an external backend shipped with sdctl (found beside its binary): it
	// may be kept warm like a built-in one.
	Bundled bool `json:"bundled,omitempty"`
	// Missing is set on a bundled backend whose executable is not beside sdctl: it cannot be
	// started (Find says how to install it).
	Missing bool `json:"missing,omitempty"`
	// ShadowedBy is set on an external backend whose name a built-in (or an earlier directory)
	// already claims: it is listed but never started.
	ShadowedBy string `json:"shadowed_by,omitempty"`

	// server is the program that serves a built-in backend (`backend serve NAME`), when it is
	// not Path itself (see Host.BuiltinServer).
	server string
}

// List returns the built-in backends, then the bundled ones, then the external ones found in
// Dirs.
func (h *Host) List() []Candidate {
	exe := h.Exe()
	seen := map[string]string{}
	bundledAt := map[string]bool{}
	var out []Candidate
	for _, b := range h.Builtins {
		out = append(out, Candidate{Name: b.Name, Path: exe, Builtin: true, server: h.builtinServer(exe)})
		seen[b.Name] = "built-in"
	}
	for _, b := range h.Bundled {
		if _, dup := seen[b.Name]; dup {
			continue
		}
		c := Candidate{Name: b.Name, Path: BundledPath(exe, b.Name), Bundled: true}
		if isExecutable(c.Path) {
			seen[b.Name] = "bundled"
			bundledAt[c.Path] = true
		} else {
			c.Missing = true
		}
		out = append(out, c)
	}
	for _, dir := range h.Dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, file := range names {
			name, ok := externalName(file)
			if !ok {
				continue
			}
			path := filepath.Join(dir, file)
			if bundledAt[path] || !isExecutable(path) {
				continue
			}
			c := Candidate{Name: name, Path: path}
			if by, dup := seen[name]; dup {
				c.ShadowedBy = by
			} else {
				seen[name] = path
			}
			out = append(out, c)
		}
	}
	return out
}

// builtinServer is BuiltinServer when it can be run, else "" (Executable serves or hands over).
func (h *Host) builtinServer(exe string) string {
	if h.BuiltinServer == "" || h.BuiltinServer == exe || !isExecutable(h.BuiltinServer) {
		return ""
	}
	return h.BuiltinServer
}

// isExecutable reports whether path is a regular file someone may execute.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && (runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0)
}

func externalName(file string) (string, bool) {
	name, ok := strings.CutPrefix(file, ExternalPrefix)
	name = strings.TrimSuffix(name, ".exe")
	return name, ok && name != "" && registry.ValidateName(name) == nil
}

// Find returns the backend called name, or a *registry.FieldError for the "backend" key naming
// what exists.
func (h *Host) Find(name string) (Candidate, error) {
	var known []string
	var missing *Candidate
	for _, c := range h.List() {
		if c.ShadowedBy != "" {
			continue
		}
		if c.Missing {
			if c.Name == name {
				missing = &c
			}
			continue
		}
		if c.Name == name {
			return c, nil
		}
		known = append(known, c.Name)
	}
	if missing != nil {
		return Candidate{}, fmt.Errorf("backend %q: %w: %s is missing (it ships beside sdctl: install the release archive "+
			"or image, or `go install github.com/sdctl/sdctl/cmd/...`)", name, ErrBundledMissing, missing.Path)
	}
	where := "no external backends found"
	if len(h.Dirs) > 0 {
		where = "external backends are " + ExternalPrefix + "NAME executables in " + strings.Join(h.Dirs, ", ")
	}
	return Candidate{}, registry.Invalidf("backend", "unknown backend %q (available: %s; %s)", name, strings.Join(known, ", "), where)
}

// Client is a running backend plugin. It implements registry.Registry; Close detaches from a
// warm backend, or stops a backend started for this client.
type Client struct {
	registry.Registry
	Candidate Candidate
	// Protocol is the negotiated plugin protocol version.
	Protocol int

	log hclog.Logger
	// warm is set when the client is attached to a warm backend, proc when it started the
	// backend for itself.
	warm *warmConn
	proc Process
}

// Process is a backend process started for one client, by go-plugin (package plugins): the
// host package itself only reattaches to and starts warm backends.
type Process interface {
	Pid() int
	// Exited reports whether the process has ended (crashed, killed, or stopped).
	Exited() bool
	// Stop ends the process, gracefully, then by force.
	Stop() error
}

// Starter is a Process whose start is reported in one line (package plugins): until its
// backend has been configured, go-plugin's warnings and the backend's are logged at debug
// level, and a call that fails because the process died or cannot be reached is a start
// failure.
type Starter interface {
	Process
	// Starting reports whether the backend has not yet been configured.
	Starting() bool
	// Started ends the start: from then on warnings are logged as they come.
	Started()
	// StartError explains in one line, wrapping ErrStartFailed, why the backend failed to
	// start; err is what its call returned.
	StartError(err error) error
}

// ErrStartFailed is wrapped by the one-line error of a backend that failed to start.
var ErrStartFailed = errors.New("backend failed to start")

// NewClient returns the client of a backend process started for it, whose calls go through
// remote.
func NewClient(cand Candidate, protocol int, remote *wire.Remote, proc Process, log hclog.Logger) *Client {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Client{Registry: remote, Candidate: cand, Protocol: protocol, proc: proc, log: log}
	remote.TransportErr = c.transportError
	return c
}

// Command is how the backend is run: sdctl re-runs itself for a built-in one.
func (c Candidate) Command() *exec.Cmd {
	if c.Builtin {
		server := c.server
		if server == "" {
			server = c.Path
		}
		return exec.Command(server, "backend", "serve", c.Name)
	}
	return exec.Command(c.Path)
}

// Trusted reports whether the backend ships with sdctl (built in or bundled beside it), so it
// runs without mutual TLS (its socket is private to the user) and may be kept warm.
func (c Candidate) Trusted() bool { return (c.Builtin || c.Bundled) && !c.Missing }

// Pid is the plugin's process ID.
func (c *Client) Pid() int {
	if c.warm != nil {
		return c.warm.pid
	}
	return c.proc.Pid()
}

// Exited reports whether the plugin process has ended (crashed, killed, or closed).
func (c *Client) Exited() bool {
	if c.warm != nil {
		return !alive(c.warm.pid)
	}
	return c.proc.Exited()
}

// Warm reports whether the client is attached to a warm backend, which outlives it.
func (c *Client) Warm() bool { return c.warm != nil }

// RegisterBatch registers insts in one call when the backend supports it (protocol 1.1 and the
// batch-register capability; see Batches), else one by one.
func (c *Client) RegisterBatch(ctx context.Context, insts []registry.Instance) error {
	return c.Registry.(*wire.Remote).RegisterBatch(ctx, insts)
}

// Batches reports whether RegisterBatch sends its instances in one call. It is known once Info
// has been called, and false before.
func (c *Client) Batches() bool { return c.Registry.(*wire.Remote).Batches() }

// ProtocolMinor is the minor version of protocol 1 agreed with the backend in Info (-1 before
// Info was called).
func (c *Client) ProtocolMinor() int { return c.Registry.(*wire.Remote).Minor() }

// Configure hands the backend its config section. Every other call needs it first. Once the
// backend has taken it, the backend has started.
func (c *Client) Configure(ctx context.Context, section map[string]any) error {
	if err := c.Registry.(*wire.Remote).Configure(ctx, section); err != nil {
		return err
	}
	if s, ok := c.proc.(Starter); ok {
		s.Started()
	}
	return nil
}

// Close stops a backend started for this client. A warm backend is only detached from: it
// stays for the next command.
func (c *Client) Close() error {
	if c.warm != nil {
		return c.warm.conn.Close()
	}
	return c.proc.Stop()
}

// KillGrace is how long a backend has to stop by itself before it is killed.
const KillGrace = 3 * time.Second

// transportError explains an error the backend did not produce: usually its process died.
func (c *Client) transportError(err error) error {
	if c.warm != nil {
		return fmt.Errorf("backend %q: warm backend (pid %d) connection failed: %w", c.Candidate.Name, c.warm.pid, err)
	}
	// A backend on a socket pair closes it only to exit (a bridge does once its backend died,
	// after stopping what is left of it): give it the time a stop gets.
	wait := 300 * time.Millisecond
	if _, private := c.proc.(*privateProcess); private {
		wait = KillGrace
	}
	deadline := time.Now().Add(wait)
	for !c.proc.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s, ok := c.proc.(Starter); ok && s.Starting() {
		return s.StartError(err)
	}
	if c.proc.Exited() {
		return fmt.Errorf("backend %q (%s) exited unexpectedly; its last log lines are above: %w",
			c.Candidate.Name, c.Candidate.Path, ErrPluginExited)
	}
	return fmt.Errorf("backend %q: plugin connection failed: %w", c.Candidate.Name, err)
}

// ErrBundledMissing is returned by Find for a bundled backend whose executable is not beside
// sdctl (only sdctl itself was installed or copied).
var ErrBundledMissing = errors.New("bundled backend not installed")

// ErrPluginExited is returned when a backend process dies during a call.
var ErrPluginExited = errors.New("plugin process exited")

// LevelName is how a log level is passed to a backend (EnvLogLevel).
func LevelName(l hclog.Level) string {
	if l == hclog.Off {
		return "off"
	}
	return strings.ToLower(l.String())
}

// Exe is the sdctl binary of the host: Executable, else os.Executable().
func (h *Host) Exe() string {
	if h.Executable != "" {
		return h.Executable
	}
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}

// Log is the host's logger (a null one when unset).
func (h *Host) Log() hclog.Logger {
	if h.Logger == nil {
		return hclog.NewNullLogger()
	}
	return h.Logger
}

// Timeout bounds a backend's start: StartTimeout, else DefaultStartTimeout.
func (h *Host) Timeout() time.Duration {
	if h.StartTimeout <= 0 {
		return DefaultStartTimeout
	}
	return h.StartTimeout
}
