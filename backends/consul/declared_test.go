package consul

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestDeclaredHealthOnConsul checks the declared-health check on a real agent: its
// definition, that every registration sets its status (Consul keeps the status of a check that
// is registered again), that it lives beside the TTL check and other checks, and that a
// registration without a declaration, or a deregistration, removes it.
func TestDeclaredHealthOnConsul(t *testing.T) {
	a, b, ctx := devBackend(t, 2*time.Minute)

	// A port that accepts connections, so the tcp check passes.
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 3000, TTL: time.Minute,
		Checks: []registry.Check{{Kind: registry.CheckTCP, Target: srv.Listener.Addr().String(), Interval: time.Second, InitialStatus: registry.HealthPassing}}}
	register := func(h registry.Health) {
		t.Helper()
		inst.Health = h
		if err := b.Register(ctx, inst); err != nil {
			t.Fatalf("Register(declared %q): %v", h, err)
		}
	}
	type agentCheck struct {
		CheckID, Name, Status, Notes, Output, ServiceID, Type string
	}
	checks := func() map[string]agentCheck {
		t.Helper()
		var all map[string]agentCheck
		apiCall(t, a, http.MethodGet, "/v1/agent/checks", nil, &all)
		out := map[string]agentCheck{}
		for id, c := range all {
			if c.ServiceID == inst.ID {
				out[id] = c
			}
		}
		return out
	}
	checkIDs := func(want ...string) {
		t.Helper()
		var got []string
		for id := range checks() {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("checks of web-1 = %q, want %q", got, want)
		}
	}
	// passingIDs is what Consul itself (its ?passing filter, which DNS also applies) serves.
	passingIDs := func() []string {
		t.Helper()
		var entries []struct{ Service struct{ ID string } }
		apiCall(t, a, http.MethodGet, "/v1/health/service/web?passing", nil, &entries)
		var out []string
		for _, e := range entries {
			out = append(out, e.Service.ID)
		}
		return out
	}
	expect := func(h registry.Health, status string) {
		t.Helper()
		c, ok := checks()[declaredCheckID(inst.ID)]
		if !ok || c.Status != status || c.Type != "ttl" || c.Name != declaredCheckName ||
			!strings.Contains(c.Notes, "declared="+string(h)) || !strings.Contains(c.Notes, "sdctl") {
			t.Errorf("declared %s: check service:web-1:declared = %+v (present %t), want a ttl check named %q, %s, with sdctl's notes",
				h, c, ok, declaredCheckName, status)
		}
		if got := registrytest.HealthOf(ctx, t, b, "web", inst.ID); got != h {
			t.Errorf("declared %s: Instances reports %q", h, got)
		}
		healthy, err := b.Instances(ctx, registry.Query{Name: "web", HealthyOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(healthy) == 1, h == registry.HealthPassing; got != want {
			t.Errorf("declared %s: healthy instances %q", h, ids(healthy))
		}
		if got, want := slices.Contains(passingIDs(), inst.ID), h == registry.HealthPassing; got != want {
			t.Errorf("declared %s: Consul's passing filter lists web-1: %t, want %t", h, got, want)
		}
		svcs, err := b.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantPassing := 0
		if h == registry.HealthPassing {
			wantPassing = 1
		}
		if len(svcs) != 1 || svcs[0].Instances != 1 || svcs[0].Passing != wantPassing {
			t.Errorf("declared %s: Services = %+v, want web with %d passing", h, svcs, wantPassing)
		}
	}

	// Wait for the tcp check to have run, so that only the declaration decides.
	register("")
	registrytest.Eventually(t, 20*time.Second, poll, func() error {
		if h := registrytest.HealthOf(ctx, t, b, "web", inst.ID); h != registry.HealthPassing {
			return fmt.Errorf("web-1 is %q, not passing yet", h)
		}
		return nil
	})
	checkIDs("service:web-1", "service:web-1:1")

	register(registry.HealthCritical)
	checkIDs("service:web-1", "service:web-1:1", "service:web-1:declared")
	expect(registry.HealthCritical, "critical")
	// Each of these re-registers an existing check, whose status Consul would otherwise keep.
	for _, step := range []struct {
		declare registry.Health
		status  string
	}{
		{registry.HealthPassing, "passing"},
		{registry.HealthWarning, "warning"},
		{registry.HealthMaintenance, "critical"},
		{registry.HealthMaintenance, "critical"},
		{registry.HealthPassing, "passing"},
	} {
		register(step.declare)
		expect(step.declare, step.status)
	}

	// Heartbeats pass the TTL check only; the declaration stays.
	register(registry.HealthCritical)
	if err := b.Heartbeat(ctx, inst.ID); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	expect(registry.HealthCritical, "critical")
	if c := checks()[ttlCheckID(inst.ID)]; c.Status != "passing" {
		t.Errorf("the TTL check is %q after a heartbeat", c.Status)
	}
	if inst2 := instanceOf(t, b, inst.ID); inst2.TTL != time.Minute {
		t.Errorf("TTL read back as %v beside a declared health, want 1m", inst2.TTL)
	}

	// A registration without a declaration removes the check and Consul alone decides again.
	register("")
	checkIDs("service:web-1", "service:web-1:1")
	if h := registrytest.HealthOf(ctx, t, b, "web", inst.ID); h != registry.HealthPassing {
		t.Errorf("declaration dropped: health %q, want passing", h)
	}

	// Deregistration removes the declared check with the others.
	register(registry.HealthCritical)
	if err := b.Deregister(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	checkIDs()
}

func instanceOf(t *testing.T, b *Backend, id string) registry.Instance {
	t.Helper()
	insts, err := b.Instances(t.Context(), registry.Query{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range insts {
		if inst.ID == id {
			return inst
		}
	}
	t.Fatalf("%s is not listed", id)
	return registry.Instance{}
}
