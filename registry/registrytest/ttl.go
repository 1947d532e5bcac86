package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

func (s *suite) testTTL(t *testing.T) {
	if !s.opts.TTL {
		t.Skip("the backend does not support TTLs")
	}
	ttl := s.opts.MinTTL
	// Polling at a twentieth of the TTL detects expiry promptly without flooding the backend.
	poll := ttl / 20

	healthy := func(ctx context.Context, t *testing.T, r registry.Registry, id string) bool {
		t.Helper()
		got := instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true})
		return slices.Contains(ids(got), id)
	}

	t.Run("Fields", func(t *testing.T) {
		t.Parallel()
		ctx := s.ctx(t)
		r := s.open(t)
		inst := instance("web", "web-1", 1)
		inst.TTL = 10 * ttl
		before := time.Now()
		register(ctx, t, r, inst)
		got := instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true})
		checkIDs(t, "a fresh TTL instance", got, "web-1")
		checkInstance(t, got[0], inst, false)
		// Backends that report Expires must report a plausible one.
		if e := got[0].Expires; !e.IsZero() && (e.Before(before) || e.After(time.Now().Add(inst.TTL+time.Second))) {
			t.Errorf("Expires = %v, want about %v", e, before.Add(inst.TTL))
		}
		if err := r.Heartbeat(ctx, "web-1"); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
	})

	for _, tc := range []struct {
		name     string
		declared registry.Health
	}{
		{"ExpiresAndRecovers", ""},
		// A declared state is an upper bound: the TTL running out wins over passing.
		{"DeclaredPassingStillExpires", registry.HealthPassing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := s.ctx(t)
			r := s.open(t)
			inst := instance("web", "web-1", 1)
			inst.TTL = ttl
			inst.Health = tc.declared
			what := fmt.Sprintf("web-1 (declared %q, TTL %v, no heartbeat)", tc.declared, ttl)
			start := time.Now()
			register(ctx, t, r, inst)
			if !healthy(ctx, t, r, "web-1") {
				t.Fatalf("%s is not healthy with a fresh TTL", what)
			}
			Eventually(t, ttl+s.opts.Timeout+s.opts.HealthLag, poll, func() error {
				if healthy(ctx, t, r, "web-1") {
					return fmt.Errorf("%s is still healthy", what)
				}
				return nil
			})
			// Nine tenths of the TTL leaves room for a server whose clock runs slightly fast.
			if elapsed := time.Since(start); elapsed < ttl*9/10 {
				t.Fatalf("%s turned unhealthy after %v, before its TTL", what, elapsed)
			}

			all := instances(ctx, t, r, registry.Query{Name: "web"})
			if s.opts.ExpiryDeletes {
				checkIDs(t, "after expiry (backend deletes expired instances)", all)
				expectErr(t, "Heartbeat after expiry", r.Heartbeat(ctx, "web-1"), registry.ErrNotFound)
				return
			}
			checkIDs(t, "Instances(web) without HealthyOnly after expiry", all, "web-1")
			if all[0].Health != registry.HealthCritical {
				t.Errorf("%s has health %q after expiry, want critical", what, all[0].Health)
			}
			svcs, err := r.Services(ctx)
			if err != nil {
				t.Fatalf("Services: %v", err)
			}
			if len(svcs) != 1 || svcs[0].Passing != 0 {
				t.Errorf("Services after expiry = %+v, want web with none passing", svcs)
			}
			if err := r.Heartbeat(ctx, "web-1"); err != nil {
				t.Fatalf("Heartbeat after expiry: %v", err)
			}
			Eventually(t, s.opts.Timeout+s.opts.HealthLag, poll, func() error {
				if !healthy(ctx, t, r, "web-1") {
					return errors.New("web-1 is not healthy again after a heartbeat")
				}
				return nil
			})
		})
	}

	t.Run("HeartbeatKeepsAlive", func(t *testing.T) {
		t.Parallel()
		ctx := s.ctx(t)
		r := s.open(t)
		inst := instance("web", "web-1", 1)
		inst.TTL = ttl
		register(ctx, t, r, inst)
		// Heartbeat four times per TTL for three TTLs; the check just before each heartbeat
		// is the moment the instance is closest to expiring.
		end := time.Now().Add(3 * ttl)
		for time.Now().Before(end) {
			time.Sleep(ttl / 4)
			if !healthy(ctx, t, r, "web-1") {
				t.Fatalf("web-1 turned unhealthy although it was heartbeated every %v (TTL %v)", ttl/4, ttl)
			}
			if err := r.Heartbeat(ctx, "web-1"); err != nil {
				t.Fatalf("Heartbeat: %v", err)
			}
		}
	})
}
