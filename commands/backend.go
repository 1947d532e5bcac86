package commands

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/plugins"
)

// backendRow is one line of `sdctl backend list`.
type backendRow struct {
	plugins.Candidate
	Kind     string `json:"kind"`
	Protocol int    `json:"protocol,omitempty"`
	Version  string `json:"version,omitempty"`
	Status   string `json:"status"`
}

func newBackendCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backend",
		Short: "List and inspect registry backends",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	var format, tmpl string
	list := &cobra.Command{
		Use:   "list",
		Short: "List built-in and external backends with their path and protocol version",
		Long: `List the backends sdctl can use: the built-in ones, then external executables named
sdctl-backend-NAME found in the plugin path (--plugin-path / SDCTL_PLUGIN_PATH / config),
then $XDG_DATA_HOME/sdctl/plugins, then the directory of the sdctl binary.

Each backend is started once to read its version and negotiate the protocol; one that fails
to start is listed with the reason.`,
		Example: "  sdctl backend list\n  sdctl backend list --plugin-path ./bin -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBackendList(cmd.Context(), f, format, tmpl)
		},
	}
	addOutputFlags(list, &format, &tmpl, output.FormatTable, "'{{.Name}} {{.Path}}'")
	cmd.AddCommand(list)
	return cmd
}

func runBackendList(ctx context.Context, f *Factory, format, tmpl string) error {
	printer, err := newPrinter(format, tmpl, output.FormatTable)
	if err != nil {
		return err
	}
	host, err := f.Host()
	if err != nil {
		return err
	}
	var rows []backendRow
	for _, c := range host.List() {
		rows = append(rows, probeBackend(ctx, f, host, c))
	}
	return printer.Print(f.IO.Out, rows, func(w io.Writer) error {
		t := f.table("name", "kind", "protocol", "version", "status", "path")
		for _, r := range rows {
			proto := ""
			if r.Protocol > 0 {
				proto = strconv.Itoa(r.Protocol)
			}
			t.AddRow(r.Name, r.Kind, proto, r.Version, r.Status, r.Path)
		}
		return t.Render(w)
	})
}

// probeBackend starts a backend to learn its protocol and version.
func probeBackend(ctx context.Context, f *Factory, host *plugins.Host, c plugins.Candidate) backendRow {
	row := backendRow{Candidate: c, Kind: "external", Status: "ok"}
	if c.Builtin {
		row.Kind = "built-in"
	}
	if c.ShadowedBy != "" {
		row.Status = "shadowed by " + c.ShadowedBy
		return row
	}
	client, err := host.StartCandidate(c)
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
