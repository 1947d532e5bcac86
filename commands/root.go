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

	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/plugins"
)

// Main runs sdctl with args (os.Args[1:]) and returns the process exit code. It is the only
// function that decides exit codes; main passes the result to os.Exit.
func Main(args []string, builtins []plugins.Backend) int {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	f := &Factory{IO: SystemIO(), Builtins: builtins, Executable: exe}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, f, args)
}

// Run executes one command line with the given factory and returns the exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(registratorArgs(args))
	err := root.ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	code := exitCode(err, interrupted)
	if err != nil && !errors.Is(err, errSilent) {
		fmt.Fprintf(f.IO.ErrOut, "sdctl: %s\n", describe(err, interrupted))
	}
	return code
}

// errSilent ends a command with a non-zero code after it already explained itself.
var errSilent = errors.New("")

// describe turns an error into the one line printed on stderr.
func describe(err error, interrupted bool) string {
	msg := err.Error()
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
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath()))
	})

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
		newClusterCmd(f),
		newBackendCmd(f),
		newConfigCmd(f),
		newVersionCmd(f),
		newWatchCmd(f),
	)
	// Argument errors are usage errors too.
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usage(fmt.Errorf("%s: %w (see '%s --help')", cmd.CommandPath(), err, cmd.CommandPath()))
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// groupRunE makes a command that only groups others print its help when called bare and reject
// an unknown subcommand with the usage code.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usage(fmt.Errorf("unknown command %q for %q (see '%s --help')", args[0], cmd.CommandPath(), cmd.CommandPath()))
}
