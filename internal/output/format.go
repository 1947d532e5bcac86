package output

import (
	"strings"

	"github.com/sdctl/sdctl/registry"
)

// Format names an output format, the value of the -o flag.
type Format string

// The formats commands can offer. Table is the default of list commands and text the default of
// resolve; template executes the --template text against the command's data.
const (
	FormatTable    Format = "table"
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatYAML     Format = "yaml"
	FormatTemplate Format = "template"
)

// Formats returns every format this package knows, in the order help texts list them.
func Formats() []Format {
	return []Format{FormatTable, FormatText, FormatJSON, FormatYAML, FormatTemplate}
}

// ParseFormat parses the value of an -o flag. Only the allowed formats are accepted (every format
// when allowed is empty); otherwise the error, which wraps registry.ErrInvalid, lists them.
// Case and surrounding spaces are ignored.
func ParseFormat(s string, allowed ...Format) (Format, error) {
	if len(allowed) == 0 {
		allowed = Formats()
	}
	want := Format(strings.ToLower(strings.TrimSpace(s)))
	for _, f := range allowed {
		if f == want {
			return f, nil
		}
	}
	names := make([]string, len(allowed))
	for i, f := range allowed {
		names[i] = string(f)
	}
	if want == "" {
		return "", registry.Invalidf("output", "no format given (allowed: %s)", strings.Join(names, ", "))
	}
	return "", registry.Invalidf("output", "unknown format %q (allowed: %s)", s, strings.Join(names, ", "))
}
