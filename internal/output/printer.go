package output

import (
	"fmt"
	"io"
	"reflect"
	"text/template"
)

// Printer writes a command's result in the format the user chose.
type Printer struct {
	// Format is the chosen format, usually from ParseFormat.
	Format Format
	// Template is executed for FormatTemplate, usually from ParseTemplate.
	Template *template.Template
}

// Print writes data to w. For json, yaml and template it renders data itself; for table and
// text it calls human, which writes the form meant for people (a Table, a line of text) and
// may ignore data. A nil human is an error only when it is needed.
func (p Printer) Print(w io.Writer, data any, human func(io.Writer) error) error {
	switch p.Format {
	case FormatJSON:
		return WriteJSON(w, data)
	case FormatYAML:
		return WriteYAML(w, data)
	case FormatTemplate:
		if p.Template == nil {
			return fmt.Errorf("output format %q needs a template (--template)", p.Format)
		}
		// A list is formatted one element at a time, as --template's help says.
		if v := reflect.ValueOf(data); v.Kind() == reflect.Slice {
			for i := range v.Len() {
				if err := ExecuteTemplate(w, p.Template, v.Index(i).Interface()); err != nil {
					return err
				}
			}
			return nil
		}
		return ExecuteTemplate(w, p.Template, data)
	case FormatTable, FormatText:
		if human == nil {
			return fmt.Errorf("output format %q is not available here", p.Format)
		}
		return human(w)
	default:
		return fmt.Errorf("unknown output format %q", p.Format)
	}
}
