package consul

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/registry"
)

func TestNewDecodesOptions(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  file-token-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		section map[string]any
		check   func(t *testing.T, b *Backend)
		field   string // when set, New must fail with a FieldError for this key
	}{
		{name: "defaults", section: nil, check: func(t *testing.T, b *Backend) {
			if got := b.Addresses(); !slices.Equal(got, []string{"127.0.0.1:8500"}) {
				t.Errorf("addresses %v", got)
			}
			if !b.opts.Stale || !b.opts.SSLVerify || b.opts.Wait != time.Minute || b.opts.AttemptTimeout != 2*time.Second {
				t.Errorf("defaults %+v", b.opts)
			}
		}},
		{name: "address list from a string", section: map[string]any{"address": "10.0.0.1:8500, https://10.0.0.2 ,10.0.0.1:8500"}, check: func(t *testing.T, b *Backend) {
			// Duplicates go; https without a port means 8501.
			if got := b.Addresses(); !slices.Equal(got, []string{"10.0.0.1:8500", "10.0.0.2:8501"}) {
				t.Errorf("addresses %v", got)
			}
			if b.c.eps[1].base.Scheme != "https" {
				t.Errorf("scheme %q", b.c.eps[1].base.Scheme)
			}
		}},
		{name: "address list from YAML", section: map[string]any{"address": []any{"a.example:1", "http://b.example:2/"}}, check: func(t *testing.T, b *Backend) {
			if got := b.Addresses(); !slices.Equal(got, []string{"a.example:1", "b.example:2"}) {
				t.Errorf("addresses %v", got)
			}
		}},
		{name: "ssl makes bare addresses https", section: map[string]any{"ssl": "true", "address": "c.example"}, check: func(t *testing.T, b *Backend) {
			if u := b.c.eps[0].base.String(); u != "https://c.example:8501" {
				t.Errorf("url %s", u)
			}
		}},
		{name: "token file wins", section: map[string]any{"token": "inline-token-0123", "token-file": tokenFile}, check: func(t *testing.T, b *Backend) {
			if b.c.token != "file-token-0123" {
				t.Errorf("token %q", b.c.token)
			}
		}},
		{name: "strings convert", section: map[string]any{"ssl-verify": "false", "stale": "0", "wait": "5m", "attempt-timeout": "500ms"}, check: func(t *testing.T, b *Backend) {
			if b.opts.SSLVerify || b.opts.Stale || b.opts.Wait != 5*time.Minute || b.opts.AttemptTimeout != 500*time.Millisecond {
				t.Errorf("options %+v", b.opts)
			}
		}},
		{name: "unknown key", section: map[string]any{"adress": "x:1"}, field: "adress"}, //nolint:misspell // the typo is the test
		{name: "bad address", section: map[string]any{"address": "10.0.0.300:8500"}, field: "address"},
		{name: "address with a path", section: map[string]any{"address": "http://a:1/consul"}, field: "address"},
		{name: "bad scheme", section: map[string]any{"address": "ftp://a:1"}, field: "address"},
		{name: "bad port", section: map[string]any{"address": "a:99999"}, field: "address"},
		{name: "wait too short", section: map[string]any{"wait": "500ms"}, field: "wait"},
		{name: "wait too long", section: map[string]any{"wait": "11m"}, field: "wait"},
		{name: "wait not a duration", section: map[string]any{"wait": "soon"}, field: "wait"},
		{name: "attempt timeout too short", section: map[string]any{"attempt-timeout": "1ns"}, field: "attempt-timeout"},
		{name: "missing token file", section: map[string]any{"token-file": filepath.Join(dir, "nope")}, field: "token-file"},
		{name: "empty token file", section: map[string]any{"token-file": emptyFile}, field: "token-file"},
		{name: "cert without key", section: map[string]any{"client-cert": tokenFile}, field: "client-cert"},
		{name: "missing CA", section: map[string]any{"ca-file": filepath.Join(dir, "nope.pem")}, field: "ca-file"},
		{name: "CA that is not PEM", section: map[string]any{"ca-file": tokenFile}, field: "ca-file"},
		{name: "CA dir without certificates", section: map[string]any{"ca-path": dir}, field: "ca-path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.section, nil)
			if tc.field != "" {
				var fe *registry.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("New(%v) = %v, want a FieldError for %q", tc.section, err, tc.field)
				}
				if strings.Contains(err.Error(), "file-token-0123") {
					t.Errorf("error %q shows the token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%v): %v", tc.section, err)
			}
			defer b.Close()
			tc.check(t, b)
		})
	}
}

// TestEnvironment goes through sdctl's configuration layer, as the CLI does: Consul's own
// variables set the documented keys, SDCTL_CONSUL_* wins over them, and config view hides the
// token.
func TestEnvironment(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Chdir(t.TempDir()) // no ./sdctl.yaml
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("token-from-file-4567"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CONSUL_HTTP_ADDR":        "https://10.0.0.1:8501,10.0.0.2:8500",
		"CONSUL_HTTP_TOKEN":       "secret-token-0123",
		"CONSUL_HTTP_SSL_VERIFY":  "false",
		"CONSUL_TLS_SERVER_NAME":  "server.dc1.consul",
		"CONSUL_NAMESPACE":        "team-a",
		"CONSUL_PARTITION":        "part-b",
		"SDCTL_CONSUL_DATACENTER": "dc2",
		"SDCTL_CONSUL_WAIT":       "30s",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	load := func() (*config.Config, map[string]any) {
		t.Helper()
		cfg, err := config.Load(pflag.NewFlagSet("test", pflag.ContinueOnError))
		if err != nil {
			t.Fatal(err)
		}
		section, err := cfg.BackendSection(Name, OptionSchema())
		if err != nil {
			t.Fatal(err)
		}
		return cfg, section
	}
	cfg, section := load()
	b, err := New(section, nil)
	if err != nil {
		t.Fatalf("New(%v): %v", section, err)
	}
	defer b.Close()
	o := b.opts
	if got := b.Addresses(); !slices.Equal(got, []string{"10.0.0.1:8501", "10.0.0.2:8500"}) {
		t.Errorf("addresses %v", got)
	}
	if o.Token != "secret-token-0123" || o.SSLVerify || o.TLSServerName != "server.dc1.consul" ||
		o.Namespace != "team-a" || o.Partition != "part-b" || o.Datacenter != "dc2" || o.Wait != 30*time.Second {
		t.Errorf("options from the environment: %v %+v", o, o)
	}
	for _, s := range cfg.View(Name, OptionSchema(), section) {
		if strings.Contains(fmt.Sprint(s.Value), "secret-token-0123") {
			t.Errorf("config view shows the token: %+v", s)
		}
		if s.Key == "consul.token" && (s.Value != config.Redacted || s.Source != "env CONSUL_HTTP_TOKEN") {
			t.Errorf("config view of the token: %+v", s)
		}
	}
	if s := fmt.Sprintf("%v %+v", o, o); strings.Contains(s, "secret-token-0123") {
		t.Errorf("formatting the options shows the token: %s", s)
	}

	// SDCTL_CONSUL_* wins over Consul's variables; the token file wins over the token.
	t.Setenv("SDCTL_CONSUL_ADDRESS", "10.9.9.9:8500")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", tokenFile)
	_, section = load()
	b2, err := New(section, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if got := b2.Addresses(); !slices.Equal(got, []string{"10.9.9.9:8500"}) {
		t.Errorf("addresses %v", got)
	}
	if b2.opts.Token != "token-from-file-4567" {
		t.Errorf("token %q, want the file's", b2.opts.Token)
	}
}

func TestOptionSchemaMatchesOptions(t *testing.T) {
	keys := optionKeysOf(t)
	var schema []string
	for _, o := range OptionSchema() {
		schema = append(schema, o.Key)
		if o.Help == "" {
			t.Errorf("option %s has no help", o.Key)
		}
		if o.Key == "token" && !o.Secret {
			t.Error("token is not marked secret")
		}
	}
	slices.Sort(keys)
	slices.Sort(schema)
	if !slices.Equal(keys, schema) {
		t.Errorf("Options keys %v, OptionSchema keys %v", keys, schema)
	}
}

// optionKeysOf lists the mapstructure keys of Options through the unknown-key error, the
// same list DecodeOptions reports.
func optionKeysOf(t *testing.T) []string {
	t.Helper()
	opts := DefaultOptions()
	err := registry.DecodeOptions(map[string]any{"no-such-key": 1}, &opts)
	var fe *registry.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("DecodeOptions: %v", err)
	}
	_, list, _ := strings.Cut(fe.Reason, "(known: ")
	return strings.Split(strings.TrimSuffix(list, ")"), ", ")
}

func TestInfoNeedsNoServer(t *testing.T) {
	b := open(t, nil, "127.0.0.1:1")
	info, err := b.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != Name || !info.Has(registry.CapTTL) || !info.Has(registry.CheckCapability(registry.CheckGRPC)) ||
		info.Has(registry.CheckCapability(registry.CheckScript)) || len(info.Options) == 0 {
		t.Errorf("Info = %+v", info)
	}
	b.Close()
	if _, err := b.Instances(t.Context(), registry.Query{Name: "web"}); err == nil {
		t.Error("Instances after Close succeeded")
	}
}
