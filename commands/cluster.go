package commands

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/registry"
)

// ClusterStatusOptions holds the parsed flags of `sdctl cluster status`.
type ClusterStatusOptions struct {
	OutputOptions
}

func newClusterCmd(f *Factory, runF func(context.Context, *ClusterStatusOptions) error) *cobra.Command {
	opts := &ClusterStatusOptions{}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the registry cluster's leader, members and their health",
		Long: `Show the backend, its leader, and each member with role, address, health and version.

Exits 0 when the cluster has a leader, 6 when it answers but has no leader, and 4 when it
cannot be reached. The file backend is a single member: the file, which leads when it is
readable.`,
		Example: `  sdctl cluster status
  sdctl cluster status -o json
  sdctl --backend consul cluster status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dispatch(cmd.Context(), f, opts, runF, runClusterStatus)
		},
	}
	addOutputFlags(status, &opts.OutputOptions, output.FormatTable, "'{{.Leader}}'")
	return newGroupCmd("cluster", "Inspect the registry cluster", status)
}

func runClusterStatus(ctx context.Context, f *Factory, opts *ClusterStatusOptions) error {
	printer, err := opts.printer()
	if err != nil {
		return err
	}
	var st registry.ClusterStatus
	err = f.withRegistry(ctx, func(ctx context.Context, reg registry.Registry) (err error) {
		st, err = reg.ClusterStatus(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	err = printer.Print(f.IO.Out, st, func(w io.Writer) error {
		leader := st.Leader
		if leader == "" {
			leader = "(none)"
		}
		if f.IO.OutTTY {
			fmt.Fprintf(w, "Backend: %s\nLeader:  %s\n\n", st.Backend, leader)
		}
		t := f.table("name", "address", "role", "leader", "health", "version")
		for _, m := range st.Members {
			t.AddRow(m.Name, m.Address, m.Role, strconv.FormatBool(m.Leader), m.Health, m.Version)
		}
		if err := t.Render(w); err != nil {
			return err
		}
		for _, n := range st.Notes {
			fmt.Fprintf(f.IO.ErrOut, "note: %s\n", n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st.Leader == "" {
		return registry.Errorf(registry.ErrNoLeader, "cluster status: the %s registry has no leader", st.Backend)
	}
	return nil
}
