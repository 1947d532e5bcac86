package registrytest

import (
	"fmt"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// testDeclaredHealth checks Instance.Health on Register: a declared state is what the registry
// reports and filters on, re-registering changes or (with an empty Health) drops it, and an
// unknown state is refused. The TTL tests check that an expired TTL beats a declared passing.
func (s *suite) testDeclaredHealth(t *testing.T) {
	t.Run("States", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		web1 := instance("web", "web-1", 1)
		register(ctx, t, r, web1, instance("web", "web-2", 2))
		var w *watcher
		if s.opts.Watch {
			w = s.watch(t, r, registry.WatchRequest{Name: "web"})
			eventIDs(t, "first event", w.next(t), "web-1", "web-2")
		}
		watched := registry.HealthPassing

		// expect checks everything a client sees of web-1 after a registration that should
		// leave it in state want; web-2, registered without a declaration, stays passing.
		expect := func(what string, want registry.Health) {
			t.Helper()
			all := instances(ctx, t, r, registry.Query{Name: "web"})
			checkIDs(t, what+": Instances(web)", all, "web-1", "web-2")
			if all[0].Health != want {
				t.Errorf("%s: web-1 has health %q, want %q", what, all[0].Health, want)
			}
			if all[1].Health != registry.HealthPassing {
				t.Errorf("%s: web-2 (nothing declared) has health %q, want passing", what, all[1].Health)
			}
			for _, warn := range []bool{false, true} {
				want1 := []string{"web-2"}
				if want.Healthy(warn) {
					want1 = []string{"web-1", "web-2"}
				}
				q := registry.Query{Name: "web", HealthyOnly: true, IncludeWarning: warn}
				checkIDs(t, fmt.Sprintf("%s: Instances(web, healthy only, include warning %t)", what, warn), instances(ctx, t, r, q), want1...)
			}
			svcs, err := r.Services(ctx)
			if err != nil {
				t.Fatalf("%s: Services: %v", what, err)
			}
			passing := 1
			if want == registry.HealthPassing {
				passing = 2
			}
			if len(svcs) != 1 || svcs[0].Name != "web" || svcs[0].Instances != 2 || svcs[0].Passing != passing {
				t.Errorf("%s: Services = %+v, want web with 2 instances, %d passing", what, svcs, passing)
			}
			if w != nil && want != watched {
				w.untilHealth(t, "web-1", want)
				watched = want
			}
		}
		for _, step := range []struct {
			declare registry.Health
			what    string
			want    registry.Health
		}{
			{registry.HealthCritical, "declared critical", registry.HealthCritical},
			{registry.HealthPassing, "declared passing after critical", registry.HealthPassing},
			{"", "re-registered without a declaration", registry.HealthPassing},
			{registry.HealthWarning, "declared warning", registry.HealthWarning},
			{registry.HealthMaintenance, "declared maintenance", registry.HealthMaintenance},
			{registry.HealthMaintenance, "declared maintenance again", registry.HealthMaintenance},
			{registry.HealthCritical, "declared critical after maintenance", registry.HealthCritical},
			// Dropping a declaration that is not passing must bring the registry's own verdict
			// back, not keep the last declared state.
			{"", "critical, then re-registered without a declaration", registry.HealthPassing},
		} {
			web1.Health = step.declare
			register(ctx, t, r, web1)
			expect(step.what, step.want)
		}

		web1.Health = "sick"
		expectErr(t, "Register with health \"sick\"", r.Register(ctx, web1), registry.ErrInvalid)
		expect("after a refused declaration", registry.HealthPassing)
	})

	t.Run("NewInstance", func(t *testing.T) {
		// A declaration on the first registration of an ID counts as much as on a later one.
		ctx := s.ctx(t)
		r := s.open(t)
		inst := instance("web", "web-1", 1)
		inst.Health = registry.HealthCritical
		register(ctx, t, r, inst)
		all := instances(ctx, t, r, registry.Query{Name: "web"})
		checkIDs(t, "Instances(web)", all, "web-1")
		if all[0].Health != registry.HealthCritical {
			t.Errorf("web-1 registered as critical has health %q", all[0].Health)
		}
		checkIDs(t, "Instances(web, healthy only)", instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true}))
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, h := range []registry.Health{"sick", "Passing", "unknown", " passing"} {
			t.Run(string(h), func(t *testing.T) {
				ctx := s.ctx(t)
				r := s.open(t)
				inst := instance("web", "web-1", 1)
				inst.Health = h
				err := r.Register(ctx, inst)
				expectErr(t, fmt.Sprintf("Register with health %q", h), err, registry.ErrInvalid)
				checkEmpty(ctx, t, r)
			})
		}
	})
}
