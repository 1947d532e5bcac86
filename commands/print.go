package commands

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
)

// addOutputFlags declares -o and --template on a read command.
func addOutputFlags(cmd *cobra.Command, format, tmpl *string, def output.Format, allowed ...output.Format) {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	cmd.Flags().StringVarP(format, "output", "o", string(def), "output format: "+strings.Join(names, "|"))
	cmd.Flags().StringVar(tmpl, "template", "", "format each result with a Go template, e.g. '{{.Address}}:{{.Port}}'")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

// newPrinter validates -o and --template before anything is started.
func newPrinter(format, tmpl string, allowed ...output.Format) (output.Printer, error) {
	if tmpl != "" {
		t, err := output.ParseTemplate(tmpl)
		if err != nil {
			return output.Printer{}, err
		}
		return output.Printer{Format: output.FormatTemplate, Template: t}, nil
	}
	fm, err := output.ParseFormat(format, allowed...)
	if err != nil {
		return output.Printer{}, err
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
