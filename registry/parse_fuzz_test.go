package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// Seeds live in testdata/fuzz/<FuzzName>/.

func FuzzParseHostPort(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := registry.ParseHostPort(s)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("ParseHostPort(%q) error %v does not wrap ErrInvalid", s, err)
			}
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
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("ParseMeta(%q) error %v does not wrap ErrInvalid", s, err)
			}
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
