package output

import (
	"fmt"
	"io"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestPrinter(t *testing.T) {
	data := []registry.Service{{Name: "web", Instances: 2, Passing: 1}}
	tmpl, err := ParseTemplate("{{.Name}}={{.Passing}}/{{.Instances}}")
	if err != nil {
		t.Fatal(err)
	}
	table := func(w io.Writer) error {
		tb := NewTable("name", "instances")
		tb.TTY = TTYAlways
		for _, s := range data {
			tb.AddRow(s.Name, fmt.Sprint(s.Instances))
		}
		return tb.Render(w)
	}
	tests := []struct {
		name    string
		printer Printer
		human   func(io.Writer) error
		want    string
		wantErr bool
	}{
		{name: "table", printer: Printer{Format: FormatTable}, human: table, want: "NAME  INSTANCES\nweb   2\n"},
		{name: "json", printer: Printer{Format: FormatJSON}, human: table, want: "[\n  {\n    \"name\": \"web\",\n    \"instances\": 2,\n    \"passing\": 1\n  }\n]\n"},
		{name: "yaml", printer: Printer{Format: FormatYAML}, want: "- name: web\n  instances: 2\n  passing: 1\n"},
		{name: "template, once per element", printer: Printer{Format: FormatTemplate, Template: tmpl}, want: "web=1/2\n"},
		{name: "template missing", printer: Printer{Format: FormatTemplate}, wantErr: true},
		{name: "text without a human form", printer: Printer{Format: FormatText}, wantErr: true},
		{name: "unknown format", printer: Printer{Format: "xml"}, human: table, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWrite(t, "Print", func(w io.Writer) error { return tt.printer.Print(w, data, tt.human) }, tt.want, tt.wantErr)
		})
	}
}
