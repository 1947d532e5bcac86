package commands

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sdctl/sdctl/internal/config"
)

func TestRegistratorArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"watch -internal consul://c:8500", "watch --internal consul://c:8500"},
		{"--backend consul watch -ip 10.0.0.1 -useIpFromLabel=ip -resync 30", "--backend consul watch --ip 10.0.0.1 --use-ip-from-label=ip --resync 30"},
		{"watch -retry-attempts -1 -retry-interval 500", "watch --retry-attempts -1 --retry-interval 500"},
		{"register -internal x", "register -internal x"}, // only watch's arguments are rewritten
		{"register watch 10.0.0.1:80 -tags x", "register watch 10.0.0.1:80 -tags x"},
		{"--log-level debug --plugin-mtls watch -cleanup", "--log-level debug --plugin-mtls watch --cleanup"},
		{"watch -- -internal", "watch -- -internal"},
		{"watch --internal -h", "watch --internal -h"},
	} {
		got := strings.Join(registratorArgs(strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("registratorArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegistratorDuration(t *testing.T) {
	for _, tc := range []struct {
		unit time.Duration
		in   string
		want time.Duration
		ok   bool
	}{
		{time.Second, "30", 30 * time.Second, true},
		{time.Millisecond, "500", 500 * time.Millisecond, true},
		{time.Second, "1m30s", 90 * time.Second, true},
		{time.Second, "0", 0, true},
		{time.Second, "-1", 0, false},
		{time.Second, "-5s", 0, false},
		{time.Second, "abc", 0, false},
	} {
		var got time.Duration
		d := registratorDuration{d: &got, unit: tc.unit}
		err := d.Set(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("Set(%q) with unit %s = %v, %v; want %v (ok %t)", tc.in, tc.unit, got, err, tc.want, tc.ok)
		}
	}
}

func TestApplyRegistryURI(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		backend string
		key     string
		want    any
		err     string
	}{
		{uri: "consul://127.0.0.1:8500", backend: "consul", key: "consul.address", want: []string{"127.0.0.1:8500"}},
		{uri: "consul://c1:8500,c2:8500,c3:8500", backend: "consul", key: "consul.address", want: []string{"c1:8500", "c2:8500", "c3:8500"}},
		{uri: "consul-tls://c1:8501", backend: "consul", key: "consul.ssl", want: "true"},
		{uri: "etcd://e1:2379/services", backend: "etcd", key: "etcd.prefix", want: "/services"},
		{uri: "etcd://e1:2379,e2:2379", backend: "etcd", key: "etcd.endpoints", want: []string{"e1:2379", "e2:2379"}},
		{uri: "file:///var/lib/sdctl/registry.json", backend: "file", key: "file.path", want: "/var/lib/sdctl/registry.json"},
		{uri: "consul://", backend: "consul", key: "backend", want: "consul"},
		{uri: "consul://c1", err: "HOST:PORT"},
		{uri: "consul://c1:8500/x", err: "no path"},
		{uri: "zookeeper://z:2181/base", err: "not supported"},
		{uri: "skydns2://e:2379/example.com", err: "not supported"},
		{uri: "redis://r:6379", err: "unknown scheme"},
		{uri: "127.0.0.1:8500", err: "SCHEME://"},
		{uri: "file://host/x", err: "no host"},
	} {
		flags := pflag.NewFlagSet("t", pflag.ContinueOnError)
		cfg, err := config.Load(flags)
		if err != nil {
			t.Fatal(err)
		}
		err = applyRegistryURI(cfg, tc.uri)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err, false) != ExitUsage {
				t.Errorf("%s: error %v (exit %d), want a usage error containing %q", tc.uri, err, exitCode(err, false), tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.uri, err)
			continue
		}
		if cfg.Backend() != tc.backend {
			t.Errorf("%s: backend %q, want %q", tc.uri, cfg.Backend(), tc.backend)
		}
		if src := cfg.Source(tc.key); src != "registry URI argument" {
			t.Errorf("%s: source of %s is %q", tc.uri, tc.key, src)
		}
		if tc.key == "backend" {
			continue
		}
		section, err := cfg.BackendSection(tc.backend, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, sub, _ := strings.Cut(tc.key, ".")
		got := section[sub]
		if want, ok := tc.want.([]string); ok {
			if g, _ := got.([]string); !slices.Equal(g, want) {
				t.Errorf("%s: %s = %v, want %v", tc.uri, tc.key, got, want)
			}
		} else if got != tc.want {
			t.Errorf("%s: %s = %v, want %v", tc.uri, tc.key, got, tc.want)
		}
	}
}
