package output

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/sdctl/sdctl/registry"
)

// templateName appears in parse and execution errors: "template: x:1: ...".
const templateName = "x"

// TemplateFuncs returns the functions templates may call besides the text/template built-ins:
//
//	join     strings.Join: {{join .Tags ","}}
//	hostport registry.HostPort, brackets IPv6: {{hostport .Address .Port}}
//	json     compact JSON of a value: {{json .Meta}}
func TemplateFuncs() template.FuncMap {
	return template.FuncMap{
		"join":     strings.Join,
		"hostport": registry.HostPort,
		"json": func(v any) (string, error) {
			b, err := compactJSON(v)
			return string(b), err
		},
	}
}

// ParseTemplate parses the text of a --template flag. The template runs against the Go value
// a command prints (field names as in the Go types, {{.Address}}, not the JSON names), with
// TemplateFuncs available; a missing map key prints as the zero value rather than "<no value>".
// The error names the flag and wraps registry.ErrInvalid:
//
//	--template: template: x:1: unexpected "}" in operand
func ParseTemplate(text string) (*template.Template, error) {
	t, err := template.New(templateName).
		Funcs(TemplateFuncs()).
		Option("missingkey=zero").
		Parse(text)
	if err != nil {
		return nil, fmt.Errorf("--template: %w", &templateError{err})
	}
	return t, nil
}

// templateError marks a template that does not parse as invalid input.
type templateError struct{ err error }

func (e *templateError) Error() string        { return e.err.Error() }
func (e *templateError) Unwrap() error        { return e.err }
func (e *templateError) Is(target error) bool { return target == registry.ErrInvalid }

// ExecuteTemplate runs t with data and writes the result to w, adding a newline when the output
// does not end with one. Nothing is written when the template produces nothing, or fails.
func ExecuteTemplate(w io.Writer, t *template.Template, data any) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return fmt.Errorf("--template: %w", &templateError{err})
	}
	if buf.Len() > 0 && !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}
