// Package commands is sdctl's command-line layer: cobra commands, their flags, and printing.
// Registry logic lives in registry/ and the backends; commands only parse, call and print.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/internal/suggest"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/wire"
)

// Program is what a main package puts behind sdctl's command line.
type Program struct {
	Builtins []wire.Backend
	Bundled  []host.BundledBackend
	// WatchEngine runs `sdctl watch`; sdctl itself has none and execs sdctl-watch.
	WatchEngine WatchEngine
	// StartBackend starts, for one command, a backend that is not kept warm (see
	// Factory.StartBackend); sdctl itself has none and execs sdctl-plugin-host for such commands.
	StartBackend func(*host.Host, host.Candidate) (*host.Client, error)
	// Executable is the sdctl binary (re-run to serve the built-in backends, and whose directory
	// holds the bundled ones); empty means this process's own.
	Executable string
}

// Main runs sdctl with args (os.Args[1:]) and returns the process exit code. It is the only
// function that decides exit codes; main passes the result to os.Exit.
func Main(args []string, p Program) int {
	exe := p.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	f := &Factory{IO: SystemIO(), Builtins: p.Builtins, Bundled: p.Bundled, Executable: exe, WatchEngine: p.WatchEngine, StartBackend: p.StartBackend}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, f, args)
}

// Run executes one command line with the given factory and returns the exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	f.args = args
	root := NewRootCmd(f)
	root.SetArgs(registratorArgs(args))
	err := root.ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	code := exitCode(err, interrupted)
	var es exitStatus
	if err != nil && !errors.Is(err, errSilent) && !errors.As(err, &es) {
		fmt.Fprintf(f.IO.ErrOut, "sdctl: %s\n", describe(err, interrupted))
	}
	return code
}

// errSilent ends a command with a non-zero code after it already explained itself.
var errSilent = errors.New("")

// describe turns an error into the one line printed on stderr: messages from libraries and
// plugins that span lines are joined.
func describe(err error, interrupted bool) string {
	msg := config.RedactURLs(strings.Join(strings.Fields(err.Error()), " "))
	switch {
	case interrupted && errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, context.DeadlineExceeded) && !strings.Contains(msg, "did not answer"):
		return msg + " (the backend did not answer in time; raise --timeout if it is just slow)"
	}
	return msg
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "sdctl",
		Short: "Register and discover services in Consul, etcd or a local file",
		Long: `sdctl registers service instances in a registry and finds healthy ones again.

The registry ("backend") is a local file by default, so sdctl works with no server;
--backend consul or etcd selects a cluster. Backends run as plugin processes.`,
		Example: `  sdctl register web 127.0.0.1:3000
  sdctl resolve web
  curl "$(sdctl resolve http://web/health)"
  sdctl catalog
  sdctl deregister web 127.0.0.1:3000`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		// A command whose backend go-plugin must start is handed to sdctl-plugin-host before
		// it reads anything (a batch on stdin, say), when this program cannot start one.
		PersistentPreRunE: func(c *cobra.Command, _ []string) error { return f.handOver(c) },
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(commandError(c, flagHint(c, err)))
	})
	root.Version = buildinfo.Get().Version
	root.SetVersionTemplate("sdctl {{.Version}}\n")

	pf := root.PersistentFlags()
	pf.String(config.KeyConfig, "", "config file (default ./sdctl.yaml, then $XDG_CONFIG_HOME/sdctl/config.yaml)")
	for _, g := range config.Globals {
		switch def := g.Default.(type) {
		case string:
			pf.String(g.Key, def, g.Help)
		case time.Duration:
			pf.Duration(g.Key, def, g.Help)
		case []string:
			pf.StringSlice(g.Key, def, g.Help)
		case bool:
			pf.Bool(g.Key, def, g.Help)
		}
	}
	_ = root.RegisterFlagCompletionFunc(config.KeyBackend, completeBackends(f))
	_ = root.RegisterFlagCompletionFunc(config.KeyLogLevel, cobra.FixedCompletions([]string{"trace", "debug", "info", "warn", "error", "off"}, cobra.ShellCompDirectiveNoFileComp))
	f.flags = pf

	root.AddCommand(
		newRegisterCmd(f, nil),
		newDeregisterCmd(f, nil),
		newResolveCmd(f, nil),
		newCatalogCmd(f, nil),
		newClusterCmd(f, nil),
		newBackendCmd(f, nil, nil),
		newConfigCmd(f, nil),
		newVersionCmd(f, nil),
		newWatchCmd(f, nil),
	)
	root.SetHelpCommand(newHelpCmd(root))
	// The completion command exists from the start (cobra adds it late otherwise), so that it
	// refuses an unknown shell like every other group refuses an unknown subcommand.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args, c.RunE = cobra.ArbitraryArgs, groupRunE
		}
	}
	// Argument errors are usage errors too.
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// commandError prefixes err with the command's path without the program name, which the
// caller prints once ("sdctl: resolve: accepts 1 arg(s)..."), and points at its help.
func commandError(c *cobra.Command, err error) error {
	path := c.CommandPath()
	if !c.HasParent() {
		return fmt.Errorf("%w (see '%s --help')", err, path)
	}
	return fmt.Errorf("%s: %w (see '%s --help')", strings.TrimPrefix(path, c.Root().Name()+" "), err, path)
}

// flagHint adds "did you mean --x?" to an unknown-flag error.
func flagHint(c *cobra.Command, err error) error {
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return err
	}
	var known []string
	c.Flags().VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
	if s := suggest.Closest(name, known); s != "" {
		return fmt.Errorf("%w; did you mean --%s?", err, s)
	}
	return err
}

// newHelpCmd is `sdctl help [COMMAND]`, which refuses a command that does not exist.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					out = append(out, c.Name())
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err == nil && len(rest) > 0 {
				err = unknownCommand(cmd, rest[0])
			}
			if err != nil {
				return err
			}
			return cmd.Help()
		},
	}
}

// unknownCommand is the usage error for an unknown subcommand of cmd, with suggestions.
func unknownCommand(cmd *cobra.Command, name string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	hint := ""
	if s := suggest.Closest(name, names); s != "" {
		hint = "; did you mean " + s + "?"
	}
	return usage(fmt.Errorf("unknown command %q for %q%s (see '%s --help')", name, cmd.CommandPath(), hint, cmd.CommandPath()))
}

func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usage(commandError(cmd, err))
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// dispatch runs a command once its arguments are parsed into opts: runF when the tests give one
// (to see the options without running anything), else the command's run function.
func dispatch[O any](ctx context.Context, f *Factory, opts *O, runF func(context.Context, *O) error, run func(context.Context, *Factory, *O) error) error {
	if runF != nil {
		return runF(ctx, opts)
	}
	return run(ctx, f, opts)
}

// newGroupCmd is a command that only groups subs.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRunE}
	cmd.AddCommand(subs...)
	return cmd
}

// groupRunE makes a command that only groups others print its help when called bare and reject
// an unknown subcommand with the usage code.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return unknownCommand(cmd, args[0])
}
