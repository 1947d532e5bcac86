package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestInterop checks that what the backend registers looks right to Consul's own tools (the
// CLI, the HTTP health endpoint, DNS), and that what they register resolves through it.
func TestInterop(t *testing.T) {
	a, b, ctx := devBackend(t, 2*time.Minute)

	web1 := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000,
		Tags: []string{"v1", "primary"}, Meta: map[string]string{"version": "1.0", "team": "a"}, Weight: 3}
	web2 := registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 3001, Tags: []string{"v1"}}
	for _, inst := range []registry.Instance{web1, web2} {
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("CatalogServices", func(t *testing.T) {
		out := consul(t, a, "catalog", "services", "-tags")
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) == 2 && f[0] == "web" && f[1] == "primary,v1"
		}) {
			t.Errorf("consul catalog services -tags:\n%s\nwant a line: web primary,v1", out)
		}
	})

	t.Run("CatalogNodes", func(t *testing.T) {
		out := consul(t, a, "catalog", "nodes", "-service=web")
		// One line per instance, both on the agent's node.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[1], a.Name+" ") || !strings.Contains(lines[1], "127.0.0.1") || lines[1] != lines[2] {
			t.Errorf("consul catalog nodes -service=web:\n%s\nwant the node %s twice", out, a.Name)
		}
	})

	t.Run("HealthPassing", func(t *testing.T) {
		var entries []struct {
			Node    struct{ Node string }
			Service struct {
				ID, Service, Address string
				Port                 int
				Tags                 []string
				Meta                 map[string]string
				Weights              struct{ Passing, Warning int }
			}
		}
		apiCall(t, a, http.MethodGet, "/v1/health/service/web?passing", nil, &entries)
		if len(entries) != 2 {
			t.Fatalf("/v1/health/service/web?passing has %d entries, want 2", len(entries))
		}
		for i, want := range []registry.Instance{web1, web2} {
			s := entries[i].Service
			if s.ID != want.ID || s.Service != "web" || s.Address != want.Address || s.Port != want.Port ||
				!slices.Equal(s.Tags, want.Tags) || !maps.Equal(s.Meta, want.Meta) && len(want.Meta) > 0 ||
				s.Weights.Passing != max(want.Weight, 1) || s.Weights.Warning != 1 || entries[i].Node.Node != a.Name {
				t.Errorf("entry %d = %+v, want %+v on node %s", i, entries[i], want, a.Name)
			}
		}
	})

	t.Run("DNS", func(t *testing.T) {
		r := dnsResolver(a)
		want := map[string]string{"3000": "10.0.0.1", "3001": "10.0.0.2"}
		if got := srv(ctx, t, r, "web.service.consul"); !maps.Equal(got, want) {
			t.Errorf("SRV web.service.consul = %v, want %v", got, want)
		}
		if got := srv(ctx, t, r, "primary.web.service.consul"); !maps.Equal(got, map[string]string{"3000": "10.0.0.1"}) {
			t.Errorf("SRV primary.web.service.consul = %v, want web-1 only", got)
		}
		// An instance whose TTL ran out is critical, and Consul DNS leaves it out.
		expiring := registry.Instance{ID: "web-3", Name: "web", Address: "10.0.0.3", Port: 3002, TTL: time.Second}
		if err := b.Register(ctx, expiring); err != nil {
			t.Fatal(err)
		}
		if got := srv(ctx, t, r, "web.service.consul"); len(got) != 3 {
			t.Errorf("SRV with a fresh TTL instance: %v, want 3 records", got)
		}
		registrytest.Eventually(t, 10*time.Second, poll, func() error {
			if got := srv(ctx, t, r, "web.service.consul"); !maps.Equal(got, want) {
				return fmt.Errorf("SRV after web-3's TTL ran out: %v, want %v", got, want)
			}
			return nil
		})
		if err := b.Deregister(ctx, "web-3"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RegisteredByConsulCLI", func(t *testing.T) {
		// A service definition with one check: Consul names the check service:<id>, the TTL
		// check Heartbeat passes (go-micro relies on the same convention).
		def := filepath.Join(t.TempDir(), "api.hcl")
		if err := os.WriteFile(def, []byte(`service {
  id      = "api-1"
  name    = "api"
  address = "10.1.0.1"
  port    = 8080
  tags    = ["cli"]
  meta    = { by = "consul" }
  check {
    ttl    = "30s"
    status = "critical"
  }
}
`), 0o600); err != nil {
			t.Fatal(err)
		}
		consul(t, a, "services", "register", def)
		// Without an address Consul's DNS and sdctl use the node's.
		consul(t, a, "services", "register", "-name=cache", "-id=cache-1", "-port=6379")

		all, err := b.Instances(ctx, registry.Query{Name: "api"})
		if err != nil || len(all) != 1 {
			t.Fatalf("Instances(api) = %v, %v", all, err)
		}
		got := all[0]
		if got.ID != "api-1" || got.Address != "10.1.0.1" || got.Port != 8080 || !slices.Equal(got.Tags, []string{"cli"}) ||
			got.Meta["by"] != "consul" || got.Node != a.Name || got.Health != registry.HealthCritical || got.TTL != 0 {
			t.Errorf("api-1 = %+v", got)
		}
		if err := b.Heartbeat(ctx, "api-1"); err != nil {
			t.Fatalf("Heartbeat of a TTL check registered by the consul CLI: %v", err)
		}
		healthy, err := b.Instances(ctx, registry.Query{Name: "api", HealthyOnly: true})
		if err != nil || len(healthy) != 1 {
			t.Errorf("after a heartbeat, healthy api instances = %v, %v", healthy, err)
		}
		cache, err := b.Instances(ctx, registry.Query{Name: "cache", HealthyOnly: true})
		if err != nil || len(cache) != 1 || cache[0].Address != "127.0.0.1" || cache[0].Port != 6379 {
			t.Errorf("Instances(cache) = %+v, %v, want 127.0.0.1:6379 (the node's address)", cache, err)
		}

		// And the other way round: the backend deregisters them, and Consul's CLI agrees.
		for _, id := range []string{"api-1", "cache-1"} {
			if err := b.Deregister(ctx, id); err != nil {
				t.Fatalf("Deregister(%s): %v", id, err)
			}
		}
		if out := consul(t, a, "catalog", "services"); strings.Contains(out, "api") || strings.Contains(out, "cache") {
			t.Errorf("consul catalog services after Deregister:\n%s", out)
		}
	})
}

// consul runs the consul CLI against a and returns its output.
func consul(t *testing.T, a *consultest.Agent, args ...string) string {
	t.Helper()
	out, err := a.Consul(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dnsResolver asks the agent's DNS interface.
func dnsResolver(a *consultest.Agent) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, a.DNSAddr)
	}}
}

// srv looks up the SRV records of name and resolves their targets: port → address.
func srv(ctx context.Context, t *testing.T, r *net.Resolver, name string) map[string]string {
	t.Helper()
	_, recs, err := r.LookupSRV(ctx, "", "", name)
	if err != nil {
		if dnsErr := (*net.DNSError)(nil); errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return map[string]string{}
		}
		t.Fatalf("SRV %s: %v", name, err)
	}
	out := map[string]string{}
	for _, rec := range recs {
		addrs, err := r.LookupHost(ctx, rec.Target)
		if err != nil || len(addrs) != 1 {
			t.Fatalf("A %s (target of SRV %s): %v %v", rec.Target, name, addrs, err)
		}
		out[fmt.Sprint(rec.Port)] = addrs[0]
	}
	return out
}
