package registrytest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Helpers for a backend's own tests, beyond what the suite checks; the suite uses them too.

// Eventually calls cond every interval until it returns nil, and fails t with cond's last error
// once timeout has passed.
func Eventually(t testing.TB, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// HealthOf returns the health r reports for instance id of service name, or "" when r does not
// list it. A failing read fails t.
func HealthOf(ctx context.Context, t testing.TB, r registry.Registry, name, id string) registry.Health {
	t.Helper()
	insts, err := r.Instances(ctx, registry.Query{Name: name})
	if err != nil {
		t.Fatalf("Instances(%s): %v", name, err)
	}
	for _, inst := range insts {
		if inst.ID == id {
			return inst.Health
		}
	}
	return ""
}

// ClosedAddr returns a loopback address ("127.0.0.1:PORT") that nothing listens on, so that
// connections to it are refused: a registry server that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// WatchEvents runs r.Watch in the background until the test ends, and returns the events it
// reports and, once it has returned, its error. The end of the test waits for it to return.
func WatchEvents(t testing.TB, r registry.Registry, req registry.WatchRequest) (<-chan registry.Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan registry.Event, 32)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- r.Watch(ctx, req, func(ev registry.Event) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return events, done
}

// NextEvent returns the next of events, failing t if none comes within d.
func NextEvent(t testing.TB, events <-chan registry.Event, d time.Duration) registry.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(d):
		t.Fatalf("no watch event within %v", d)
	}
	panic("unreachable")
}
