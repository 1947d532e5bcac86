package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/plugins/wire"
)

type versionInfo struct {
	buildinfo.Info
	PluginProtocol int `json:"plugin_protocol"`
}

// VersionOptions holds the parsed flags of `sdctl version`.
type VersionOptions struct {
	OutputOptions
}

func newVersionCmd(f *Factory, runF func(context.Context, *VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{}
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print sdctl's version, commit, build date and plugin protocol version",
		Example: "  sdctl version\n  sdctl version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dispatch(cmd.Context(), f, opts, runF, runVersion)
		},
	}
	addOutputFlags(cmd, &opts.OutputOptions, output.FormatTable, "'{{.Version}}'")
	return cmd
}

func runVersion(_ context.Context, f *Factory, opts *VersionOptions) error {
	printer, err := opts.printer()
	if err != nil {
		return err
	}
	v := versionInfo{Info: buildinfo.Get(), PluginProtocol: wire.ProtocolVersion}
	return printer.Print(f.IO.Out, v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "sdctl %s\ncommit: %s\nbuilt: %s\ngo: %s %s\nplugin protocol: %d\n",
			v.Version, v.Commit, v.Date, v.GoVersion, v.Platform, v.PluginProtocol)
		return err
	})
}
