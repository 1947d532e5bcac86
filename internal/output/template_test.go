package output

import (
	"errors"
	"io"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{name: "if without a value", text: "{{if}}{{end}}", want: `--template: template: x:1: missing value for if`},
		{name: "unexpected brace", text: "{{(.Name}}", want: `--template: template: x:1: unclosed left paren`},
		{name: "unknown function", text: "{{nope .Name}}", want: `--template: template: x:1: function "nope" not defined`},
		{name: "operand", text: "{{.Name }\n}", want: `--template: template: x:1: unexpected "}" in operand`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTemplate(tt.text)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ParseTemplate(%q) error = %v, want %q", tt.text, err, tt.want)
			}
			if !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("error %v does not wrap registry.ErrInvalid", err)
			}
		})
	}
}

func TestExecuteTemplate(t *testing.T) {
	inst := registry.Instance{
		ID: "web-1", Name: "web", Address: "fd00::5", Port: 3000,
		Tags: []string{"http", "v2"}, Meta: map[string]string{"zone": "b", "url": "http://x/?a&b"},
	}
	tests := []struct {
		name string
		text string
		data any
		want string
	}{
		{name: "newline added", text: "{{.Name}}", data: inst, want: "web\n"},
		{name: "newline kept", text: "{{.Name}}\n", data: inst, want: "web\n"},
		{name: "hostport brackets IPv6", text: "{{hostport .Address .Port}}", data: inst, want: "[fd00::5]:3000\n"},
		{name: "join", text: `{{join .Tags ","}}`, data: inst, want: "http,v2\n"},
		{name: "json is compact and not HTML-escaped", text: "{{json .Meta}}", data: inst, want: `{"url":"http://x/?a&b","zone":"b"}` + "\n"},
		{name: "missing map key is empty", text: "[{{.Meta.nope}}]", data: inst, want: "[]\n"},
		{name: "range over a list", text: "{{range .}}{{.ID}}\n{{end}}", data: []registry.Instance{inst, {ID: "web-2"}}, want: "web-1\nweb-2\n"},
		{name: "empty output stays empty", text: "{{range .}}{{.ID}}{{end}}", data: []registry.Instance{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			checkWrite(t, "ExecuteTemplate", func(w io.Writer) error { return ExecuteTemplate(w, tmpl, tt.data) }, tt.want, false)
		})
	}
}

func TestExecuteTemplateError(t *testing.T) {
	tmpl, err := ParseTemplate("partial {{.Nope}}")
	if err != nil {
		t.Fatal(err)
	}
	checkFailsQuietly(t, "ExecuteTemplate with an unknown field", func(w io.Writer) error {
		return ExecuteTemplate(w, tmpl, registry.Service{Name: "web"})
	})
}
