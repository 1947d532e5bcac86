package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/internal/xdg"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// IOStreams are the streams a command reads and writes. stdout carries data only.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY is true when Out is a terminal: tables get aligned columns and a header.
	OutTTY bool
}

// SystemIO returns the process's standard streams.
func SystemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, OutTTY: term.IsTerminal(int(os.Stdout.Fd()))}
}

// Factory gives commands their dependencies, built lazily so that `--help` or a usage error
// never starts a plugin.
type Factory struct {
	IO       *IOStreams
	Builtins []wire.Backend
	// Bundled are the backends shipped beside the sdctl binary as their own executables; their
	// option schemas are known without starting them.
	Bundled []host.BundledBackend
	// Executable is sdctl's own binary, re-run to serve built-in backends.
	Executable string

	// NewRegistry, when set, replaces the backend process for the commands that use Registry:
	// tests run commands in process with it.
	NewRegistry func(ctx context.Context) (registry.Registry, error)

	// WatchEngine runs `sdctl watch` in this process; nil execs sdctl-watch (see WatchEngine).
	WatchEngine WatchEngine
	// StartBackend starts a backend for one command with go-plugin: an external plugin, or,
	// where socket pairs are missing (host.PrivateSupported), any backend that is not kept warm.
	// sdctl leaves it nil, so that it links neither go-plugin nor gRPC; a command that needs it
	// is handed to sdctl-plugin-host (see handOver).
	StartBackend func(*host.Host, host.Candidate) (*host.Client, error)

	args  []string // the command line, for a program that runs in this one's place
	flags *pflag.FlagSet
	cfg   *config.Config
	log   hclog.Logger
	// found is the configured backend, once candidate has looked it up.
	found *found
}

// Config loads the merged configuration once.
func (f *Factory) Config() (*config.Config, error) {
	if f.cfg == nil {
		cfg, err := config.Load(f.flags)
		if err != nil {
			return nil, err
		}
		if cfg.File() != "" {
			if err := cfg.CheckFileKeys(f.sections(cfg)); err != nil {
				return nil, err
			}
		}
		f.cfg = cfg
	}
	return f.cfg, nil
}

// sections lists the backends that may have a config section, with the keys each knows: the
// built-in and bundled backends' documented options, and nil (any key) for the external plugins
// on the plugin path.
func (f *Factory) sections(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	h := &host.Host{Builtins: f.Builtins, Bundled: f.Bundled, Dirs: cfg.PluginDirs(f.Executable), Executable: f.Executable}
	for _, c := range h.List() {
		if _, seen := out[c.Name]; !seen {
			out[c.Name] = nil
		}
	}
	add := func(name string, opts []registry.Option) {
		keys := []string{}
		for _, o := range opts {
			keys = append(keys, o.Key)
		}
		out[name] = keys
	}
	for _, b := range f.Bundled {
		add(b.Name, b.Options)
	}
	for _, b := range f.Builtins {
		add(b.Name, b.Options)
	}
	return out
}

// Logger is the stderr logger at the configured level.
func (f *Factory) Logger() hclog.Logger {
	if f.log == nil {
		level := hclog.Warn
		if cfg, err := f.Config(); err == nil {
			level, _ = logging.ParseLevel(cfg.LogLevel())
		}
		f.log = logging.New(f.IO.ErrOut, level)
	}
	return f.log
}

// Host returns the plugin host for the current configuration.
func (f *Factory) Host() (*host.Host, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return &host.Host{
		Builtins:     f.Builtins,
		Bundled:      f.Bundled,
		Dirs:         cfg.PluginDirs(f.Executable),
		Executable:   f.Executable,
		Logger:       f.Logger(),
		StartTimeout: cfg.PluginTimeout(),
		BuiltinMTLS:  cfg.PluginMTLS(),
		IdleTimeout:  cfg.PluginIdleTimeout(),
		LogDir:       warmLogDir(),
		// Built-in backends are served by the plugin host: run it directly rather than
		// through sdctl's hand-over.
		BuiltinServer: CompanionPath(f.Executable, PluginHostCommand),
	}, nil
}

// Registry returns the configured registry, ready to use; the caller must Close it. Commands
// get a registry.Registry, so tests can run them in process against an in-memory backend by
// setting NewRegistry.
func (f *Factory) Registry(ctx context.Context) (registry.Registry, error) {
	if f.NewRegistry != nil {
		return f.NewRegistry(ctx)
	}
	return f.Backend(ctx)
}

// withRegistry opens the configured registry, calls fn with it and a context bounded by the
// configured timeout, and closes it: for a command that makes one call.
func (f *Factory) withRegistry(ctx context.Context, fn func(context.Context, registry.Registry) error) error {
	reg, err := f.Registry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	ctx, cancel := f.callContext(ctx)
	defer cancel()
	return fn(ctx, reg)
}

// Backend starts (or reattaches to) the configured backend process and configures it. The
// caller must Close the result.
func (f *Factory) Backend(ctx context.Context) (*host.Client, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	h, cand, err := f.candidate()
	if err != nil {
		return nil, err
	}
	if opts, known := f.knownOptions(cand.Name); known && h.CanWarm(cand) {
		client, err := f.attach(ctx, cfg, h, cand, opts)
		if !errors.Is(err, host.ErrWarmUnavailable) || (f.StartBackend == nil && !h.CanStartPrivate(cand)) {
			return client, err
		}
		f.Logger().Warn("starting the backend for this command only", "reason", err)
	}
	client, err := f.startBackend(h, cand)
	if err != nil {
		return nil, err
	}
	if err := f.configure(ctx, cfg, client); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// found is the result of looking up the configured backend.
type found struct {
	host *host.Host
	cand host.Candidate
	err  error
}

// candidate finds the configured backend. The lookup (which reads the plugin directories) is
// done once per command: the hand-over check and Backend both ask.
func (f *Factory) candidate() (*host.Host, host.Candidate, error) {
	if f.found == nil {
		h, cand, err := f.lookup()
		f.found = &found{h, cand, err}
	}
	return f.found.host, f.found.cand, f.found.err
}

func (f *Factory) lookup() (*host.Host, host.Candidate, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, host.Candidate{}, err
	}
	h, err := f.Host()
	if err != nil {
		return nil, host.Candidate{}, err
	}
	cand, err := h.Find(cfg.Backend())
	if err != nil {
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			return nil, host.Candidate{}, &config.Error{Key: config.KeyBackend, Source: cfg.Source(config.KeyBackend), Reason: fe.Reason}
		}
		return nil, host.Candidate{}, err
	}
	return h, cand, nil
}

// startBackend starts cand for this command only: over a socket pair when it ships with sdctl
// (host.Host.StartPrivate), else with go-plugin (see StartBackend).
func (f *Factory) startBackend(h *host.Host, cand host.Candidate) (*host.Client, error) {
	if h.CanStartPrivate(cand) {
		return h.StartPrivate(cand)
	}
	if f.StartBackend == nil && h.CanBridge(cand) && !isCompletion(f.args) {
		return h.StartBridged(cand)
	}
	if f.StartBackend == nil {
		// Shell completion asks the backend for names without a command's hooks: hand it over
		// here (it reads nothing from stdin).
		if isCompletion(f.args) {
			return nil, execCompanion(f.Executable, PluginHostCommand, "this command's backend", f.args)
		}
		return nil, fmt.Errorf("backend %q: this program keeps backends warm only; %s starts the others", cand.Name, PluginHostCommand)
	}
	return f.StartBackend(h, cand)
}

func (f *Factory) configure(ctx context.Context, cfg *config.Config, client *host.Client) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout())
	defer cancel()
	info, err := client.Info(ctx)
	if errors.Is(err, host.ErrStartFailed) {
		return err // one line that names the backend
	}
	if err != nil {
		return fmt.Errorf("backend %q: %w", client.Candidate.Name, err)
	}
	section, err := cfg.BackendSection(client.Candidate.Name, info.Options)
	if err != nil {
		return err
	}
	if err := client.Configure(ctx, section); err != nil {
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			return cfg.SectionError(client.Candidate.Name, fe)
		}
		if errors.Is(err, host.ErrStartFailed) {
			return err
		}
		return fmt.Errorf("backend %q: %w", client.Candidate.Name, err)
	}
	return nil
}

// knownOptions returns the option list of a backend shipped with sdctl (built in or bundled),
// known without starting it.
func (f *Factory) knownOptions(name string) ([]registry.Option, bool) {
	for _, b := range f.Builtins {
		if b.Name == name {
			return b.Options, true
		}
	}
	for _, b := range f.Bundled {
		if b.Name == name {
			return b.Options, true
		}
	}
	return nil, false
}

// attach connects to the warm backend for the effective config section, starting it if needed.
func (f *Factory) attach(ctx context.Context, cfg *config.Config, h *host.Host, cand host.Candidate, opts []registry.Option) (*host.Client, error) {
	section, err := cfg.BackendSection(cand.Name, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout())
	defer cancel()
	client, err := h.Attach(ctx, cand, section)
	if err != nil {
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			return nil, cfg.SectionError(cand.Name, fe)
		}
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("backend %q: %w", cand.Name, err)
	}
	return client, nil
}

// callContext bounds one backend call by the configured timeout.
func (f *Factory) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if cfg, err := f.Config(); err == nil {
		return context.WithTimeout(ctx, cfg.Timeout())
	}
	return context.WithCancel(ctx)
}

// warmLogDir is where warm backends write their logs: $XDG_STATE_HOME/sdctl ("" without a home
// directory, which leaves the host's fallback).
func warmLogDir() string {
	d, err := xdg.StateHome()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "sdctl")
}

// isCompletion reports whether args are a shell's request for completions.
func isCompletion(args []string) bool {
	return len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
}
