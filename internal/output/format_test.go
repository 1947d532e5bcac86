package output

import (
	"errors"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestParseFormat(t *testing.T) {
	list := []Format{FormatTable, FormatJSON, FormatYAML}
	tests := []struct {
		name    string
		in      string
		allowed []Format
		want    Format
		wantErr string
	}{
		{name: "every format allowed by default", in: "template", want: FormatTemplate},
		{name: "allowed", in: "json", allowed: list, want: FormatJSON},
		{name: "case and spaces ignored", in: " YAML ", allowed: list, want: FormatYAML},
		{name: "known but not allowed", in: "text", allowed: list, wantErr: `output: unknown format "text" (allowed: table, json, yaml)`},
		{name: "unknown", in: "xml", wantErr: `output: unknown format "xml" (allowed: table, text, json, yaml, template)`},
		{name: "empty", in: "", allowed: list, wantErr: "output: no format given (allowed: table, json, yaml)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(tt.in, tt.allowed...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseFormat(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				if !errors.Is(err, registry.ErrInvalid) {
					t.Errorf("error %v does not wrap registry.ErrInvalid", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
