package registrytest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// checkInstance compares the fields a caller supplies to Register, plus the health a fresh
// instance without checks must have.
func checkInstance(t *testing.T, got, want registry.Instance, weights bool) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Address != want.Address || got.Port != want.Port {
		t.Errorf("instance = %s %s %s:%d, want %s %s %s:%d",
			got.ID, got.Name, got.Address, got.Port, want.ID, want.Name, want.Address, want.Port)
	}
	if !sameSet(got.Tags, want.Tags) {
		t.Errorf("instance %s: tags = %q, want %q", want.ID, got.Tags, want.Tags)
	}
	if !maps.Equal(got.Meta, want.Meta) {
		t.Errorf("instance %s: meta = %v, want %v", want.ID, got.Meta, want.Meta)
	}
	if weights && effectiveWeight(got.Weight) != effectiveWeight(want.Weight) {
		t.Errorf("instance %s: weight = %d, want %d", want.ID, got.Weight, want.Weight)
	}
	if got.TTL != want.TTL {
		t.Errorf("instance %s: TTL = %v, want %v", want.ID, got.TTL, want.TTL)
	}
	if got.Health != registry.HealthPassing {
		t.Errorf("instance %s: health = %q, want %q", want.ID, got.Health, registry.HealthPassing)
	}
}

// effectiveWeight treats zero as the documented default of 1.
func effectiveWeight(w int) int {
	if w == 0 {
		return 1
	}
	return w
}

func (s *suite) testRegister(t *testing.T) {
	t.Run("AllFields", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		want := instance("web", "web-1", 1)
		want.Tags = []string{"primary", "v2"}
		want.Meta = map[string]string{"version": "2.1.0", "zone": "eu-1a"}
		want.Weight = 5
		register(ctx, t, r, want)
		got := instances(ctx, t, r, registry.Query{Name: "web"})
		checkIDs(t, "Instances(web)", got, "web-1")
		checkInstance(t, got[0], want, supports(ctx, t, r, registry.CapWeights))
	})

	t.Run("Drain", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		if !supports(ctx, t, r, registry.CapDrain) {
			t.Skip("the backend does not advertise drain")
		}
		drained := instance("web", "web-1", 1)
		drained.Drain = true
		register(ctx, t, r, drained, instance("web", "web-2", 2))
		got := instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true})
		checkIDs(t, "Instances(web): a drained instance is still listed", got, "web-1", "web-2")
		if !got[0].Drain || got[1].Drain {
			t.Errorf("Drain = %t, %t; want true, false", got[0].Drain, got[1].Drain)
		}
		for pick := range uint64(4) {
			p := pick
			picked := instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true, Pick: &p})
			if picked = registry.PickFrom(picked, p); len(picked) != 1 || picked[0].ID != "web-2" {
				t.Fatalf("Pick %d: %v, want only web-2 (web-1 is drained)", p, picked)
			}
		}
		undrained := instance("web", "web-1", 1)
		register(ctx, t, r, undrained)
		if got := instances(ctx, t, r, registry.Query{Name: "web"}); got[0].Drain {
			t.Errorf("re-registered without drain, still drained")
		}
	})

	t.Run("ReplaceSameID", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		first := instance("web", "web-1", 1)
		first.Tags = []string{"old"}
		first.Meta = map[string]string{"version": "1"}
		register(ctx, t, r, first)
		register(ctx, t, r, first) // idempotent
		second := instance("web", "web-1", 2)
		second.Tags = []string{"new", "canary"}
		second.Meta = map[string]string{"version": "2"}
		register(ctx, t, r, second)
		got := instances(ctx, t, r, registry.Query{Name: "web"})
		checkIDs(t, "after re-registering web-1", got, "web-1")
		checkInstance(t, got[0], second, false)
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			modify func(*registry.Instance)
		}{
			{"EmptyID", func(i *registry.Instance) { i.ID = "" }},
			{"BadID", func(i *registry.Instance) { i.ID = "web/1" }},
			{"BadName", func(i *registry.Instance) { i.Name = "web service" }},
			{"EmptyName", func(i *registry.Instance) { i.Name = "" }},
			{"PortZero", func(i *registry.Instance) { i.Port = 0 }},
			{"PortTooLarge", func(i *registry.Instance) { i.Port = 65536 }},
			{"BadAddress", func(i *registry.Instance) { i.Address = "10.0.0.300" }},
			{"EmptyAddress", func(i *registry.Instance) { i.Address = "" }},
			{"BadTag", func(i *registry.Instance) { i.Tags = []string{""} }},
			{"BadMetaKey", func(i *registry.Instance) { i.Meta = map[string]string{"a b": "c"} }},
			{"NegativeWeight", func(i *registry.Instance) { i.Weight = -1 }},
			{"NegativeTTL", func(i *registry.Instance) { i.TTL = -time.Second }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := s.ctx(t)
				r := s.open(t)
				inst := instance("web", "web-1", 1)
				tc.modify(&inst)
				expectErr(t, "Register(invalid)", r.Register(ctx, inst), registry.ErrInvalid)
				checkEmpty(ctx, t, r)
			})
		}
	})

	t.Run("Check", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		inst := instance("web", "web-1", 1)
		inst.Checks = []registry.Check{{Kind: registry.CheckTCP, Target: "127.0.0.1:1", Interval: 10 * time.Second, Timeout: time.Second}}
		err := r.Register(ctx, inst)
		if !s.opts.Checks {
			expectErr(t, "Register with a check", err, registry.ErrUnsupported)
			checkEmpty(ctx, t, r)
			return
		}
		if err != nil {
			t.Fatalf("Register with a tcp check: %v", err)
		}
		checkIDs(t, "Instances(web)", instances(ctx, t, r, registry.Query{Name: "web"}), "web-1")
	})

	if !s.opts.TTL {
		t.Run("TTLUnsupported", func(t *testing.T) {
			ctx := s.ctx(t)
			r := s.open(t)
			inst := instance("web", "web-1", 1)
			inst.TTL = s.opts.MinTTL
			expectErr(t, "Register with a TTL", r.Register(ctx, inst), registry.ErrUnsupported)
			checkEmpty(ctx, t, r)
		})
	}
}

func (s *suite) testDeregister(t *testing.T) {
	t.Run("Removes", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1), instance("web", "web-2", 2))
		if err := r.Deregister(ctx, "web-1"); err != nil {
			t.Fatalf("Deregister(web-1): %v", err)
		}
		checkIDs(t, "after Deregister(web-1)", instances(ctx, t, r, registry.Query{Name: "web"}), "web-2")
		expectErr(t, "second Deregister(web-1)", r.Deregister(ctx, "web-1"), registry.ErrNotFound)
		checkIDs(t, "after second Deregister(web-1)", instances(ctx, t, r, registry.Query{Name: "web"}), "web-2")
	})

	t.Run("Unknown", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		expectErr(t, "Deregister(unknown)", r.Deregister(ctx, "nope-1"), registry.ErrNotFound)
	})

	t.Run("RegisterAgain", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		inst := instance("web", "web-1", 1)
		register(ctx, t, r, inst)
		if err := r.Deregister(ctx, inst.ID); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		register(ctx, t, r, inst)
		checkIDs(t, "after register, deregister, register", instances(ctx, t, r, registry.Query{Name: "web"}), "web-1")
	})
}

func (s *suite) testHeartbeat(t *testing.T) {
	t.Run("Unknown", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		expectErr(t, "Heartbeat(unknown)", r.Heartbeat(ctx, "nope-1"), registry.ErrNotFound)
	})

	t.Run("WithoutTTL", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1))
		expectErr(t, "Heartbeat of an instance without TTL", r.Heartbeat(ctx, "web-1"), registry.ErrInvalid)
	})
}

func (s *suite) testInstances(t *testing.T) {
	t.Run("SortedByID", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		for i, id := range []string{"web-c", "web-a", "web-d", "web-b"} {
			register(ctx, t, r, instance("web", id, i))
		}
		checkIDs(t, "Instances(web)", instances(ctx, t, r, registry.Query{Name: "web"}), "web-a", "web-b", "web-c", "web-d")
	})

	t.Run("OnlyTheNamedService", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1), instance("api", "api-1", 2), instance("web.internal", "wi-1", 3))
		checkIDs(t, "Instances(web)", instances(ctx, t, r, registry.Query{Name: "web"}), "web-1")
		checkIDs(t, "Instances(api)", instances(ctx, t, r, registry.Query{Name: "api"}), "api-1")
	})

	t.Run("UnknownName", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1))
		checkIDs(t, "Instances(nope)", instances(ctx, t, r, registry.Query{Name: "nope"}))
	})

	t.Run("Pick", func(t *testing.T) {
		// A backend may apply Pick or ignore it; either way PickFrom on the answer gives the
		// match at that position, counted after the other filters.
		ctx := s.ctx(t)
		r := s.open(t)
		for i, id := range []string{"web-c", "web-a", "web-d", "web-b"} {
			inst := instance("web", id, i)
			if id != "web-d" {
				inst.Tags = []string{"x"}
			}
			register(ctx, t, r, inst)
		}
		for pick, want := range map[uint64]string{0: "web-a", 1: "web-b", 2: "web-c", 3: "web-a", 1<<63 + 1: "web-a"} {
			q := registry.Query{Name: "web", Tags: []string{"x"}, Pick: &pick}
			got := instances(ctx, t, r, q)
			if len(got) > 1 {
				got = registry.PickFrom(got, pick)
			}
			checkIDs(t, fmt.Sprintf("Instances(web, tag x, pick %d)", pick), got, want)
		}
		none := uint64(5)
		checkIDs(t, "Instances(nope, pick 5)", instances(ctx, t, r, registry.Query{Name: "nope", Pick: &none}))
	})

	t.Run("Tags", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		for i, tags := range [][]string{{"a", "b"}, {"a"}, {"b"}, nil, {"b", "c", "a"}} {
			inst := instance("web", "web-"+string(rune('1'+i)), i)
			inst.Tags = tags
			register(ctx, t, r, inst)
		}
		for _, tc := range []struct {
			tags []string
			want []string
		}{
			{nil, []string{"web-1", "web-2", "web-3", "web-4", "web-5"}},
			{[]string{"a"}, []string{"web-1", "web-2", "web-5"}},
			{[]string{"a", "b"}, []string{"web-1", "web-5"}},
			{[]string{"b", "c"}, []string{"web-5"}},
			{[]string{"d"}, nil},
			{[]string{"a", "d"}, nil},
		} {
			q := registry.Query{Name: "web", Tags: tc.tags}
			checkIDs(t, "Instances with tags "+joinTags(tc.tags), instances(ctx, t, r, q), tc.want...)
		}
	})

	t.Run("HealthyOnly", func(t *testing.T) {
		// Instances without checks or TTL are passing, so HealthyOnly keeps all of them; the
		// TTL tests cover instances that are not.
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1), instance("web", "web-2", 2))
		got := instances(ctx, t, r, registry.Query{Name: "web", HealthyOnly: true})
		checkIDs(t, "Instances(web, healthy only)", got, "web-1", "web-2")
		for _, inst := range got {
			if inst.Health != registry.HealthPassing {
				t.Errorf("instance %s: health = %q, want passing", inst.ID, inst.Health)
			}
		}
	})
}

func joinTags(tags []string) string {
	if len(tags) == 0 {
		return "(none)"
	}
	out := tags[0]
	for _, t := range tags[1:] {
		out += "," + t
	}
	return out
}

func (s *suite) testServices(t *testing.T) {
	t.Run("Empty", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		checkEmpty(ctx, t, r)
	})

	t.Run("Summary", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		web1 := instance("web", "web-1", 1)
		web1.Tags = []string{"a", "b"}
		web2 := instance("web", "web-2", 2)
		web2.Tags = []string{"b", "c"}
		api := instance("api", "api-1", 3)
		db := instance("db", "db-1", 4)
		db.Tags = []string{"primary"}
		register(ctx, t, r, web1, web2, api, db)
		got, err := r.Services(ctx)
		if err != nil {
			t.Fatalf("Services: %v", err)
		}
		want := []registry.Service{
			{Name: "api", Instances: 1, Passing: 1},
			{Name: "db", Instances: 1, Passing: 1, Tags: []string{"primary"}},
			{Name: "web", Instances: 2, Passing: 2, Tags: []string{"a", "b", "c"}},
		}
		if len(got) != len(want) {
			t.Fatalf("Services = %+v, want %+v", got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Name != w.Name || g.Instances != w.Instances || g.Passing != w.Passing || !sameSet(g.Tags, w.Tags) || len(g.Tags) != len(w.Tags) {
				t.Errorf("Services[%d] = %+v, want %+v (tags in any order, no duplicates)", i, g, w)
			}
		}
	})
}
