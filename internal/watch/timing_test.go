package watch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/watch"
	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

// A TTL instance is renewed every third of its TTL (registry.RenewEvery) on the watcher's clock
// from its registration: the clock moves a minute at a time, and the heartbeats due by then, and
// no more, are sent before it moves on.
func TestWatchHeartbeatsEveryThirdOfTheTTL(t *testing.T) {
	h := newHarness(t)
	clk := clock.NewFake(time.Now())
	// An hour, so that the file registry's own (real) clock never sees the TTL run out.
	h.start(watch.Options{Clock: clk, Spec: spec.Options{TTL: time.Hour}}, nil)
	h.runWeb(1) // registered at the fake clock's start: due at 20 min, 40 min, …
	beats := func() float64 { return metricValue(t, h.m, "sdctl_watch_heartbeats_total", "") }
	for m := 1; m <= 100; m++ {
		clk.Advance(time.Minute)
		want := float64(m / 20)
		h.eventually(10*time.Second, fmt.Sprintf("%v heartbeats at %d min", want, m), func() (bool, string) {
			n := beats()
			if n > want {
				t.Fatalf("%v heartbeats at %d min, want %v: one every 20 min", n, m, want)
			}
			return n == want, fmt.Sprintf("%v heartbeats", n)
		})
	}
}

// With a backend that cannot be watched, --resync is what repairs the registry: a reconcile
// every period of the watcher's clock, and none in between.
func TestWatchResyncReconcilesEveryPeriod(t *testing.T) {
	h := newHarness(t)
	h.conn.unwatchable.Store(true)
	clk := clock.NewFake(time.Now())
	h.start(watch.Options{Clock: clk, Resync: time.Minute}, nil)
	h.eventually(10*time.Second, "the start reconcile, and the watch given up", func() (bool, string) {
		logs := h.logs.String()
		return strings.Contains(logs, "reason=start") && strings.Contains(logs, "the backend cannot be watched"), logs
	})
	resyncs := func() float64 { return metricValue(t, h.m, "sdctl_watch_reconciles_total", "resync") }
	// An instance marked as this node's, of a container that does not exist: only a
	// reconcile notices it.
	stale := func(n int) string {
		id := fmt.Sprintf("%s:gone-%d:3000", h.node, n)
		if err := h.reg.Register(context.Background(), registry.Instance{ID: id, Name: "service-web", Address: "10.0.0.1", Port: 1,
			Meta: map[string]string{spec.MetaNode: h.node, spec.MetaScope: "io.sdctl.test.watch=" + h.node,
				spec.MetaContainer: strings.Repeat("0", 64)}}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Three minutes in steps of 10 s: each step waits for the reconciles due by then.
	id := stale(1)
	for step := 1; step <= 18; step++ {
		clk.Advance(10 * time.Second)
		want := float64(step / 6)
		h.eventually(10*time.Second, fmt.Sprintf("%v resyncs after %s", want, time.Duration(step)*10*time.Second), func() (bool, string) {
			n, all := resyncs(), metricSum(t, h.m, "sdctl_watch_reconciles_total")
			if n > want || all > want+1 {
				t.Fatalf("%v resyncs, %v reconciles after %s; want %v and the start one", n, all, time.Duration(step)*10*time.Second, want)
			}
			return n == want, fmt.Sprintf("%v resyncs", n)
		})
		if step%6 != 0 {
			if _, ok := h.owned()[id]; !ok {
				t.Fatalf("%s removed before the resync", id)
			}
			continue
		}
		h.waitIDs(10 * time.Second)
		id = stale(step/6 + 1)
	}
}
