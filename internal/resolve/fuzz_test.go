package resolve

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// Seeds live in testdata/fuzz/<FuzzName>/.

func FuzzParseTarget(f *testing.F) {
	probe := registry.Instance{Address: "fd00::5", Port: 3000}
	f.Fuzz(func(t *testing.T, arg string) {
		target, err := ParseTarget(arg)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("ParseTarget(%q) error %v does not wrap registry.ErrInvalid", arg, err)
			}
			return
		}
		if err := registry.ValidateName(target.Name); err != nil {
			t.Fatalf("ParseTarget(%q) accepted name %q: %v", arg, target.Name, err)
		}
		isURL := strings.Contains(arg, "://")
		if (target.URL != nil) != isURL {
			t.Fatalf("ParseTarget(%q): URL = %v, but argument contains \"://\" = %v", arg, target.URL, isURL)
		}
		if target.URL != nil && target.URL.Hostname() != target.Name {
			t.Fatalf("ParseTarget(%q): Name %q differs from URL host %q", arg, target.Name, target.URL.Hostname())
		}
		if _, err := target.Rewrite(probe); err != nil {
			t.Fatalf("Rewrite of accepted target %q failed: %v", arg, err)
		}
	})
}

func FuzzRewriteURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw, addr string, port int) {
		inst := registry.Instance{Address: addr, Port: port}
		got, err := RewriteURL(raw, inst)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("RewriteURL(%q) error %v does not wrap registry.ErrInvalid", raw, err)
			}
			return
		}
		before, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("RewriteURL accepted %q, which does not parse: %v", raw, err)
		}
		after, err := url.Parse(got)
		if err != nil {
			t.Fatalf("RewriteURL(%q, %s) = %q, which does not parse: %v", raw, registry.HostPort(addr, port), got, err)
		}
		if after.Hostname() != addr || after.Port() != strconv.Itoa(port) {
			t.Fatalf("RewriteURL(%q) = %q: host %q port %q, want %q and %d", raw, got, after.Hostname(), after.Port(), addr, port)
		}
		same := []struct{ what, before, after string }{
			{"scheme", before.Scheme, after.Scheme},
			{"user info", before.User.String(), after.User.String()},
			{"path", before.EscapedPath(), after.EscapedPath()},
			{"query", before.RawQuery, after.RawQuery},
			{"fragment", before.EscapedFragment(), after.EscapedFragment()},
		}
		for _, s := range same {
			if s.before != s.after {
				t.Fatalf("RewriteURL(%q) = %q changed the %s from %q to %q", raw, got, s.what, s.before, s.after)
			}
		}
		// Byte for byte: only host[:port] differs, so everything from the path on is a suffix of
		// both, and the scheme and user info are a prefix of both.
		_, rest, _ := strings.Cut(raw, "://")
		tail := rest[min(len(rest), strings.IndexAny(rest+"/", "/?#")):]
		if !strings.HasSuffix(got, tail) {
			t.Fatalf("RewriteURL(%q) = %q does not keep %q", raw, got, tail)
		}
	})
}
