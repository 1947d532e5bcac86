package commands

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/registry"
)

// completionTimeout keeps a shell responsive when the registry is slow or down.
const completionTimeout = 2 * time.Second

// completeServiceNames completes the argument at position pos with registered service names.
func completeServiceNames(f *Factory, pos int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != pos {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		withServices(cmd, f, func(_ context.Context, _ registry.Registry, services []registry.Service) {
			for _, s := range services {
				if strings.HasPrefix(s.Name, toComplete) {
					out = append(out, cobra.CompletionWithDesc(s.Name, plural(s.Instances, "instance")))
				}
			}
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeInstanceIDs completes `deregister ID` with the IDs of every instance.
func completeInstanceIDs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		withServices(cmd, f, func(ctx context.Context, reg registry.Registry, services []registry.Service) {
			for _, s := range services {
				insts, err := reg.Instances(ctx, registry.Query{Name: s.Name})
				if err != nil {
					continue
				}
				for _, in := range insts {
					if strings.HasPrefix(in.ID, toComplete) {
						out = append(out, cobra.CompletionWithDesc(in.ID, s.Name))
					}
				}
			}
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeBackends completes --backend with the backends found.
func completeBackends(f *Factory) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		host, err := f.Host()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, c := range host.List() {
			if c.ShadowedBy == "" {
				out = append(out, c.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// withServices starts the backend and calls fn with the registered services; completion
// quietly offers nothing when the registry cannot be reached in time.
func withServices(cmd *cobra.Command, f *Factory, fn func(context.Context, registry.Registry, []registry.Service)) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	reg, err := f.Registry(ctx)
	if err != nil {
		return
	}
	defer reg.Close()
	if services, err := reg.Services(ctx); err == nil {
		fn(ctx, reg, services)
	}
}
