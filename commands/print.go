package commands

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
)

// outputFormats is the one -o vocabulary of every command that prints data. "text" is read as
// "table": the form meant for people (aligned columns on a terminal, tab-separated lines when
// piped; for resolve, one HOST:PORT or URL per line).
var outputFormats = []output.Format{output.FormatTable, output.FormatJSON, output.FormatYAML}

// OutputOptions are the -o and --template flags of a command that prints data.
type OutputOptions struct {
	Output   string
	Template string

	def output.Format // the command's default format
}

// addOutputFlags declares -o and --template on a command that prints data, into o. def is the
// command's default format; example is a --template that fits the command's data.
func addOutputFlags(cmd *cobra.Command, o *OutputOptions, def output.Format, example string) {
	o.def = def
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", fmt.Sprintf("output format: table, json or yaml (default %s)", def))
	cmd.Flags().StringVar(&o.Template, "template", "", "format each result with a Go template instead of -o, e.g. "+example)
	names := make([]string, len(outputFormats))
	for i, a := range outputFormats {
		names[i] = string(a)
	}
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
	cmd.Annotations = map[string]string{"output-default": string(def)}
}

// printer validates -o and --template before anything is started. An empty format is the
// command's default.
func (o *OutputOptions) printer() (output.Printer, error) {
	format, tmpl := o.Output, o.Template
	if tmpl != "" {
		if format != "" {
			return output.Printer{}, usage(errors.New("-o and --template: choose one (--template replaces the output format)"))
		}
		t, err := output.ParseTemplate(tmpl)
		if err != nil {
			return output.Printer{}, err
		}
		return output.Printer{Format: output.FormatTemplate, Template: t}, nil
	}
	if format == "" {
		return output.Printer{Format: o.def}, nil
	}
	fm, err := output.ParseFormat(format, append(outputFormats, output.FormatText)...)
	if err != nil {
		return output.Printer{}, usage(fmt.Errorf("-o: unknown format %q (table, json or yaml)", format))
	}
	if fm == output.FormatText {
		fm = output.FormatTable
	}
	return output.Printer{Format: fm}, nil
}

// table starts a table that is aligned with a header only when stdout is a terminal.
func (f *Factory) table(columns ...string) *output.Table {
	t := output.NewTable(columns...)
	t.TTY = output.TTYNever
	if f.IO.OutTTY {
		t.TTY = output.TTYAlways
	}
	return t
}
