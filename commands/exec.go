package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/spf13/cobra"
)

// sdctl hands two kinds of work to programs that ship beside it, so that it links (and
// initialises, in every process) only what its everyday commands use:
const (
	// WatchCommand runs `sdctl watch` (see WatchEngine): the watcher engine and the Docker
	// client.
	WatchCommand = "sdctl-watch"
	// PluginHostCommand runs the commands whose backend go-plugin starts (see
	// Factory.StartBackend), and serves the built-in backends: go-plugin and gRPC.
	PluginHostCommand = "sdctl-plugin-host"
)

// installHint says how to get the programs that ship beside sdctl.
const installHint = "install the release archive or image, or `go install github.com/sdctl/sdctl/cmd/...`"

// CompanionPath is where the program name (WatchCommand, PluginHostCommand) is expected beside
// the sdctl binary exe. It is looked for only there, like the bundled backends.
func CompanionPath(exe, name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(filepath.Dir(exe), name)
}

// WatchPath is where the watch executable is expected beside the sdctl binary exe.
func WatchPath(exe string) string { return CompanionPath(exe, WatchCommand) }

// execWatch replaces this process with sdctl-watch and the same arguments, once they have been
// checked here: signals reach the watcher directly and its exit code is the command's.
func execWatch(f *Factory) error { return execCompanion(f.Executable, WatchCommand, "watch", f.args) }

// execCompanion replaces this process with the program name beside sdctl (exe), run with args
// and with sdctl's path as its argv[0] (which it uses to find sdctl and what ships beside it).
// The program's PID, signals and exit code are the command's.
func execCompanion(exe, name, what string, args []string) error {
	path := CompanionPath(exe, name)
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is missing (it ships beside sdctl: %s)", what, path, installHint)
	}
	return replaceProcess(path, exe, args)
}

// commandsWithBackends are the commands that call a backend, by their path.
var commandsWithBackends = []string{
	"sdctl register", "sdctl deregister", "sdctl resolve", "sdctl catalog", "sdctl cluster status", "sdctl backend list",
	"sdctl config view", // asks an external backend for its options
}

// handOver replaces this process with sdctl-plugin-host when command c needs a backend that
// go-plugin must start and this program cannot start one (StartBackend is nil): an external
// backend (or, without socket pairs, any backend not kept warm); and for `backend list` when
// external backends are installed, which it starts to ask their versions. It runs before the
// command reads anything, so the plugin host sees the same input.
func (f *Factory) handOver(c *cobra.Command) error {
	if f.StartBackend != nil || !slices.Contains(commandsWithBackends, c.CommandPath()) {
		return nil
	}
	if c.CommandPath() == "sdctl backend list" {
		if !f.anyNeedsGoPlugin() {
			return nil
		}
	} else if !f.needsStartBackend(c.CommandPath() == "sdctl config view") {
		return nil
	}
	return execCompanion(f.Executable, PluginHostCommand, "this command's backend", f.args)
}

// needsStartBackend reports whether the configured backend is one only go-plugin can start (or,
// with optionsOnly, whether its options are not known without starting it). A configuration or
// backend name that is wrong is reported by the command itself.
func (f *Factory) needsStartBackend(optionsOnly bool) bool {
	h, cand, err := f.candidate()
	if err != nil {
		return false
	}
	_, known := f.knownOptions(cand.Name)
	if optionsOnly {
		return !known
	}
	if !known {
		return true
	}
	return !h.CanStartPrivate(cand) && (!h.CanWarm(cand) || h.WarmUsable() != nil)
}

// anyNeedsGoPlugin reports whether `backend list` would start a backend only go-plugin can
// start: an external one, or any where socket pairs are missing.
func (f *Factory) anyNeedsGoPlugin() bool {
	h, err := f.Host()
	if err != nil {
		return false
	}
	for _, c := range h.List() {
		if c.Missing || c.ShadowedBy != "" {
			continue
		}
		if !h.CanStartPrivate(c) {
			return true
		}
	}
	return false
}

// ServeElsewhere handles `backend serve NAME` (args are os.Args[1:]), the command a host runs
// to start a built-in backend, in a program that does not serve backends itself (sdctl): it
// replaces this process with sdctl-plugin-host and the same arguments. Call it first thing in
// main, before anything could write to stdout. exe is sdctl's path ("" for this process's).
func ServeElsewhere(args []string, exe string) (code int, handled bool) {
	if len(args) < 2 || args[0] != "backend" || args[1] != "serve" {
		return 0, false
	}
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	err := execCompanion(exe, PluginHostCommand, "backend serve", args)
	fmt.Fprintf(os.Stderr, "sdctl: %v\n", err)
	return 1, true
}

// InvokingSdctl is, in a program that ships beside sdctl (name: WatchCommand or
// PluginHostCommand), the sdctl that ran it: its argv[0], an absolute path, as execCompanion
// passes it. Run some other way, the sdctl beside the program.
func InvokingSdctl(name string) string {
	if len(os.Args) > 0 && filepath.IsAbs(os.Args[0]) && filepath.Base(os.Args[0]) != filepath.Base(CompanionPath("", name)) {
		return os.Args[0]
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return filepath.Join(filepath.Dir(exe), "sdctl")
}
