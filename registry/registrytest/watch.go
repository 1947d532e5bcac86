package registrytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// watcher runs one Watch call in the background and hands its events to the test.
type watcher struct {
	s      *suite
	events chan registry.Event
	done   chan error
	cancel context.CancelFunc
	last   uint64
}

func (s *suite) watch(t *testing.T, r registry.Registry, req registry.WatchRequest) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(s.ctx(t))
	w := &watcher{s: s, events: make(chan registry.Event, 64), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- r.Watch(ctx, req, func(ev registry.Event) error {
			select {
			case w.events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-w.done: //nolint:errcheck // the watch ended; its result was checked elsewhere
		case <-time.After(s.opts.Timeout):
			t.Errorf("Watch(%+v) did not return within %v of its context's cancellation", req, s.opts.Timeout)
		}
	})
	return w
}

// next returns the next event, failing the test if none comes in time or the watch ends.
func (w *watcher) next(t *testing.T) registry.Event {
	t.Helper()
	select {
	case ev := <-w.events:
		if ev.Index < w.last {
			t.Fatalf("watch index went backwards: %d after %d", ev.Index, w.last)
		}
		w.last = ev.Index
		return ev
	case err := <-w.done:
		t.Fatalf("Watch ended early: %v", err)
	case <-time.After(w.s.opts.Timeout):
		t.Fatalf("no watch event within %v", w.s.opts.Timeout)
	}
	panic("unreachable")
}

// until returns the first event holding exactly the instances want. Events with other sets may
// come first (a backend may report intermediate states, or repeat one); the whole wait is
// bounded by the suite's timeout.
func (w *watcher) until(t *testing.T, want ...string) registry.Event {
	t.Helper()
	deadline := time.Now().Add(w.s.opts.Timeout)
	for time.Now().Before(deadline) {
		ev := w.next(t)
		if sameSet(ids(ev.Instances), want) {
			return ev
		}
	}
	t.Fatalf("no watch event with instances %q within %v", want, w.s.opts.Timeout)
	panic("unreachable")
}

// untilHealth returns the first event in which instance id has health want, bounded like until.
func (w *watcher) untilHealth(t *testing.T, id string, want registry.Health) registry.Event {
	t.Helper()
	deadline := time.Now().Add(w.s.opts.Timeout)
	for time.Now().Before(deadline) {
		ev := w.next(t)
		for _, inst := range ev.Instances {
			if inst.ID == id && inst.Health == want {
				return ev
			}
		}
	}
	t.Fatalf("no watch event with %s %s within %v", id, want, w.s.opts.Timeout)
	panic("unreachable")
}

func eventIDs(t *testing.T, what string, ev registry.Event, want ...string) {
	t.Helper()
	got := ids(ev.Instances)
	if want == nil {
		want = []string{}
	}
	if !sameSet(got, want) || len(got) != len(want) {
		t.Fatalf("%s: event %d has instances %q, want %q", what, ev.Index, got, want)
	}
}

// watchWeb1 registers web-1 in a new registry and watches service web until its first event,
// which must hold web-1.
func (s *suite) watchWeb1(t *testing.T) (context.Context, registry.Registry, *watcher, registry.Event) {
	t.Helper()
	ctx := s.ctx(t)
	r := s.open(t)
	register(ctx, t, r, instance("web", "web-1", 1))
	w := s.watch(t, r, registry.WatchRequest{Name: "web"})
	first := w.next(t)
	eventIDs(t, "first event", first, "web-1")
	return ctx, r, w, first
}

func (s *suite) testWatch(t *testing.T) {
	if !s.opts.Watch {
		t.Run("Unsupported", func(t *testing.T) {
			r := s.open(t)
			ctx, cancel := context.WithTimeout(s.ctx(t), s.opts.Timeout)
			defer cancel()
			err := r.Watch(ctx, registry.WatchRequest{Name: "web"}, func(registry.Event) error { return nil })
			expectErr(t, "Watch", err, registry.ErrUnsupported)
		})
		return
	}

	t.Run("FirstEventIsCurrentSet", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1), instance("web", "web-2", 2), instance("api", "api-1", 3))
		eventIDs(t, "first event of Watch(web)", s.watch(t, r, registry.WatchRequest{Name: "web"}).next(t), "web-1", "web-2")
		eventIDs(t, "first event of Watch(all)", s.watch(t, r, registry.WatchRequest{}).next(t), "api-1", "web-1", "web-2")
		eventIDs(t, "first event of Watch(nope)", s.watch(t, r, registry.WatchRequest{Name: "nope"}).next(t))
	})

	t.Run("Changes", func(t *testing.T) {
		ctx, r, w, first := s.watchWeb1(t)

		register(ctx, t, r, instance("web", "web-2", 2))
		added := w.until(t, "web-1", "web-2")
		if added.Index <= first.Index {
			t.Errorf("event after a registration has index %d, not above %d", added.Index, first.Index)
		}
		for _, inst := range added.Instances {
			if inst.Name != "web" || inst.Health != registry.HealthPassing {
				t.Errorf("event instance %s: name %q health %q, want web passing", inst.ID, inst.Name, inst.Health)
			}
		}

		if err := r.Deregister(ctx, "web-1"); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		removed := w.until(t, "web-2")
		if removed.Index <= added.Index {
			t.Errorf("event after a deregistration has index %d, not above %d", removed.Index, added.Index)
		}
	})

	t.Run("AllServices", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		w := s.watch(t, r, registry.WatchRequest{})
		eventIDs(t, "first event on an empty registry", w.next(t))
		register(ctx, t, r, instance("web", "web-1", 1))
		w.until(t, "web-1")
		register(ctx, t, r, instance("api", "api-1", 2))
		w.until(t, "api-1", "web-1")
	})

	t.Run("Resume", func(t *testing.T) {
		ctx, r, w, first := s.watchWeb1(t)
		w.cancel()

		// Whether the registration lands before or after the resumed watch starts, its first
		// event must be the new state: re-sending the state at first.Index is the bug.
		resumed := s.watch(t, r, registry.WatchRequest{Name: "web", Index: first.Index})
		register(ctx, t, r, instance("web", "web-2", 2))
		ev := resumed.next(t)
		eventIDs(t, "first event after resuming at the last index", ev, "web-1", "web-2")
		if ev.Index <= first.Index {
			t.Errorf("resumed event has index %d, not above %d", ev.Index, first.Index)
		}
	})

	t.Run("ContextCancel", func(t *testing.T) {
		r := s.open(t)
		ctx, cancel := context.WithCancel(s.ctx(t))
		done := make(chan error, 1)
		started := make(chan struct{}, 1)
		go func() {
			done <- r.Watch(ctx, registry.WatchRequest{Name: "web"}, func(registry.Event) error {
				select {
				case started <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("Watch ended before its first event: %v", err)
		case <-time.After(s.opts.Timeout):
			t.Fatalf("no first event within %v", s.opts.Timeout)
		}
		cancel()
		select {
		case err := <-done:
			expectErr(t, "Watch after cancel", err, context.Canceled)
		case <-time.After(s.opts.Timeout):
			t.Fatalf("Watch did not return within %v of cancel", s.opts.Timeout)
		}
	})

	t.Run("CallbackError", func(t *testing.T) {
		ctx := s.ctx(t)
		r := s.open(t)
		register(ctx, t, r, instance("web", "web-1", 1))
		errStop := errors.New("stop watching")
		var calls int
		done := make(chan error, 1)
		go func() {
			done <- r.Watch(ctx, registry.WatchRequest{Name: "web"}, func(registry.Event) error {
				calls++
				return errStop
			})
		}()
		select {
		case err := <-done:
			expectErr(t, "Watch whose callback fails", err, errStop)
			if calls != 1 {
				t.Errorf("callback called %d times after returning an error, want 1", calls)
			}
		case <-time.After(s.opts.Timeout):
			t.Fatalf("Watch did not return within %v of its callback failing", s.opts.Timeout)
		}
	})
}
