package commands

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/plugins/host"
)

// backendRow is one line of `sdctl backend list`.
type backendRow struct {
	host.Candidate
	Kind     string `json:"kind"`
	Protocol int    `json:"protocol,omitempty"`
	Version  string `json:"version,omitempty"`
	Status   string `json:"status"`
	// Warm lists the process IDs of this backend's warm processes (one per configuration).
	Warm []int `json:"warm,omitempty"`
}

// BackendListOptions holds the parsed flags of `sdctl backend list`.
type BackendListOptions struct {
	OutputOptions
}

// BackendStopOptions holds the arguments of `sdctl backend stop`.
type BackendStopOptions struct {
	// Name is the backend whose warm processes to stop; empty stops all.
	Name string
}

func newBackendCmd(f *Factory, listF func(context.Context, *BackendListOptions) error, stopF func(context.Context, *BackendStopOptions) error) *cobra.Command {
	listOpts, stopOpts := &BackendListOptions{}, &BackendStopOptions{}
	list := &cobra.Command{
		Use:   "list",
		Short: "List built-in, bundled and external backends with their path and protocol version",
		Long: `List the backends sdctl can use: the built-in one (file), the bundled ones (consul and
etcd, executables named sdctl-backend-NAME that ship beside the sdctl binary and are looked
for only there), then external executables named sdctl-backend-NAME found in the plugin path
(--plugin-path / SDCTL_PLUGIN_PATH / config), then $XDG_DATA_HOME/sdctl/plugins, then the
directory of the sdctl binary.

Each backend is started once to read its version and negotiate the protocol; one that fails
to start is listed with the reason. The warm column shows the process IDs of the backend's
warm processes (kept running for --plugin-idle-timeout after a command; 'sdctl backend stop'
ends them).`,
		Example: "  sdctl backend list\n  sdctl backend list --plugin-path ./bin -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dispatch(cmd.Context(), f, listOpts, listF, runBackendList)
		},
	}
	addOutputFlags(list, &listOpts.OutputOptions, output.FormatTable, "'{{.Name}} {{.Path}}'")
	stop := &cobra.Command{
		Use:   "stop [NAME]",
		Short: "Stop the warm backend processes of this user (all, or NAME's)",
		Long: `Stop the backend processes that sdctl keeps running between commands (see
--plugin-idle-timeout), all of them or those of backend NAME. It prints the name and process ID of
each one it stopped. The next command starts a new one.`,
		Example: "  sdctl backend stop\n  sdctl backend stop consul",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				stopOpts.Name = args[0]
			}
			return dispatch(cmd.Context(), f, stopOpts, stopF, runBackendStop)
		},
	}
	return newGroupCmd("backend", "List, inspect and stop registry backends", list, stop)
}

func runBackendStop(_ context.Context, f *Factory, opts *BackendStopOptions) error {
	h, err := f.Host()
	if err != nil {
		return err
	}
	for _, w := range h.StopWarm(opts.Name) {
		if _, err := fmt.Fprintf(f.IO.Out, "%s\t%d\n", w.Name, w.Pid); err != nil {
			return err
		}
	}
	return nil
}

func runBackendList(ctx context.Context, f *Factory, opts *BackendListOptions) error {
	printer, err := opts.printer()
	if err != nil {
		return err
	}
	h, err := f.Host()
	if err != nil {
		return err
	}
	warm := map[string][]int{}
	for _, w := range h.Warm("") {
		warm[w.Name] = append(warm[w.Name], w.Pid)
	}
	var rows []backendRow
	for _, c := range h.List() {
		row := probeBackend(ctx, f, h, c)
		if c.ShadowedBy == "" {
			row.Warm = warm[c.Name]
		}
		rows = append(rows, row)
	}
	return printer.Print(f.IO.Out, rows, func(w io.Writer) error {
		t := f.table("name", "kind", "protocol", "version", "status", "warm", "path")
		for _, r := range rows {
			proto := ""
			if r.Protocol > 0 {
				proto = strconv.Itoa(r.Protocol)
			}
			pids := make([]string, len(r.Warm))
			for i, p := range r.Warm {
				pids[i] = strconv.Itoa(p)
			}
			t.AddRow(r.Name, r.Kind, proto, r.Version, r.Status, strings.Join(pids, ","), r.Path)
		}
		return t.Render(w)
	})
}

// probeBackend starts a backend to learn its protocol and version.
func probeBackend(ctx context.Context, f *Factory, h *host.Host, c host.Candidate) backendRow {
	row := backendRow{Candidate: c, Kind: "external", Status: "ok"}
	switch {
	case c.Builtin:
		row.Kind = "built-in"
	case c.Bundled:
		row.Kind = "bundled"
	}
	if c.Missing {
		row.Status = "missing: not installed beside sdctl"
		return row
	}
	if c.ShadowedBy != "" {
		row.Status = "shadowed by " + c.ShadowedBy
		return row
	}
	client, err := f.startBackend(h, c)
	if err != nil {
		row.Status = "error: " + err.Error()
		return row
	}
	defer client.Close()
	row.Protocol = client.Protocol
	ctx, cancel := f.callContext(ctx)
	defer cancel()
	info, err := client.Info(ctx)
	if err != nil {
		row.Status = fmt.Sprintf("error: %v", err)
		return row
	}
	row.Version = info.Version
	return row
}
