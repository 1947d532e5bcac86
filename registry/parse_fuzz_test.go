package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// Seeds live in testdata/fuzz/<FuzzName>/.

// refused reports whether a parser refused s, failing t unless the error wraps ErrInvalid.
func refused(t *testing.T, parser, s string, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("%s(%q) error %v does not wrap ErrInvalid", parser, s, err)
	}
	return err != nil
}

func FuzzParseHostPort(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := registry.ParseHostPort(s)
		if refused(t, "ParseHostPort", s, err) {
			return
		}
		if err := registry.ValidatePort(port); err != nil {
			t.Fatalf("ParseHostPort(%q) accepted port %d: %v", s, port, err)
		}
		if host != "" {
			if err := registry.ValidateAddress(host); err != nil {
				t.Fatalf("ParseHostPort(%q) accepted host %q: %v", s, host, err)
			}
		}
		joined := registry.HostPort(host, port)
		h2, p2, err := registry.ParseHostPort(joined)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("ParseHostPort(%q) = %q, %d, but HostPort gives %q, which parses as %q, %d, %v",
				s, host, port, joined, h2, p2, err)
		}
	})
}

func FuzzParseMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		key, value, err := registry.ParseMeta(s)
		if refused(t, "ParseMeta", s, err) {
			return
		}
		if strings.Contains(key, "=") || key+"="+value != s {
			t.Fatalf("ParseMeta(%q) = %q, %q: does not split at the first '='", s, key, value)
		}
		if err := registry.ValidateMeta(map[string]string{key: value}); err != nil {
			t.Fatalf("ParseMeta(%q) accepted %q=%q: %v", s, key, value, err)
		}
		k2, v2, err := registry.ParseMeta(key + "=" + value)
		if err != nil || k2 != key || v2 != value {
			t.Fatalf("ParseMeta(%q) = %q, %q, but re-parsing gives %q, %q, %v", s, key, value, k2, v2, err)
		}
	})
}
