package file

import (
	"errors"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// ttlInstance is a web instance with a TTL and a ttl check carrying initial status and
// deregister-after.
func ttlInstance(id string, ttl, deregisterAfter time.Duration, initial registry.Health) registry.Instance {
	inst := webInstance(id, 1)
	inst.TTL = ttl
	inst.Checks = []registry.Check{{Kind: registry.CheckTTL, DeregisterAfter: deregisterAfter, InitialStatus: initial}}
	return inst
}

func TestExpiredInstancesAreReaped(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := withClock(b, start)
	for _, inst := range []registry.Instance{
		ttlInstance("web-reaped", 2*time.Second, 5*time.Second, ""),
		ttlInstance("web-kept", 2*time.Second, 0, ""),
		webInstance("web-nottl", 3),
	} {
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	listed := func() map[string]registry.Health {
		t.Helper()
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]registry.Health{}
		for _, inst := range got {
			out[inst.ID] = inst.Health
		}
		return out
	}

	clock.t = start.Add(3 * time.Second) // both TTLs ran out; deregister-after not yet
	if got := listed(); got["web-reaped"] != registry.HealthCritical || got["web-kept"] != registry.HealthCritical || len(got) != 3 {
		t.Errorf("after the TTL: %v", got)
	}

	clock.t = start.Add(7 * time.Second) // 2s TTL + 5s deregister-after
	if got := listed(); len(got) != 2 || got["web-kept"] != registry.HealthCritical {
		t.Errorf("after deregister-after: %v, want web-kept (critical) and web-nottl", got)
	}
	if svcs, err := b.Services(ctx); err != nil || len(svcs) != 1 || svcs[0].Instances != 2 {
		t.Errorf("Services after deregister-after: %+v %v", svcs, err)
	}
	if err := b.Heartbeat(ctx, "web-reaped"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Heartbeat of a reaped instance: %v, want not found", err)
	}
	if doc := readDoc(t, b.Path()); len(doc.Instances) != 3 {
		t.Fatalf("a read changed the file: %d instances", len(doc.Instances))
	}

	// The next write drops it from the file.
	if err := b.Register(ctx, webInstance("web-other", 4)); err != nil {
		t.Fatal(err)
	}
	doc := readDoc(t, b.Path())
	if _, found := doc.find("web-reaped"); found || len(doc.Instances) != 3 {
		t.Errorf("after the next write the file holds %d instances (web-reaped kept: %v)", len(doc.Instances), found)
	}
}

func TestTTLInitialStatus(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	withClock(b, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, tc := range []struct {
		initial registry.Health
		want    registry.Health
	}{{"", registry.HealthPassing}, {registry.HealthPassing, registry.HealthPassing}, {registry.HealthWarning, registry.HealthWarning}, {registry.HealthCritical, registry.HealthCritical}} {
		id := "web-" + string(tc.initial)
		if err := b.Register(ctx, ttlInstance(id, 10*time.Second, 0, tc.initial)); err != nil {
			t.Fatal(err)
		}
		if got := registrytest.HealthOf(ctx, t, b, "web", id); got != tc.want {
			t.Errorf("initial status %q: health %q before a heartbeat, want %q", tc.initial, got, tc.want)
		}
		if err := b.Heartbeat(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got := registrytest.HealthOf(ctx, t, b, "web", id); got != registry.HealthPassing {
			t.Errorf("initial status %q: health %q after a heartbeat, want passing", tc.initial, got)
		}
	}
}

// TestInitialCriticalIsReapedWithoutHeartbeat: critical from the start, the deregister-after
// counts from the registration.
func TestInitialCriticalIsReapedWithoutHeartbeat(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := withClock(b, start)
	if err := b.Register(ctx, ttlInstance("web-1", time.Minute, 10*time.Second, registry.HealthCritical)); err != nil {
		t.Fatal(err)
	}
	clock.t = start.Add(10 * time.Second)
	if got, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(got) != 0 {
		t.Errorf("10s after a critical registration with deregister-after 10s: %v %v", got, err)
	}
}

func TestChecksOtherThanTTLAreRefused(t *testing.T) {
	b := openTemp(t)
	inst := webInstance("web-1", 1)
	inst.TTL = time.Second
	inst.Checks = []registry.Check{{Kind: registry.CheckHTTP, Target: "http://10.0.0.1/health"}}
	if err := b.Register(t.Context(), inst); !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("Register with an http check: %v", err)
	}
	inst.TTL = 0
	inst.Checks = []registry.Check{{Kind: registry.CheckTTL, DeregisterAfter: time.Second}}
	if err := b.Register(t.Context(), inst); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register with a ttl check and no TTL: %v", err)
	}
}
