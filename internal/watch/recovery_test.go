package watch_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/dockertest"
	"github.com/sdctl/sdctl/internal/watch"
	"github.com/sdctl/sdctl/internal/watch/clock"
)

// A container that keeps sending events while the registry is down is tried on its one retry
// schedule: events neither add schedules nor bring the next try forward, and each try runs
// when the line announcing it said, 0.1 s doubling up to MaxBackoff.
func TestWatchRetriesOneSchedulePerContainer(t *testing.T) {
	h := newHarness(t)
	clk := clock.NewFake(time.Now())
	h.start(watch.Options{MaxBackoff: time.Second, Clock: clk}, nil)
	h.conn.down.Store(true)
	c := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	retries := func() []time.Duration { return announced(t, h.logs.String(), "retrying container") }
	h.eventually(10*time.Second, "a failed register announcing its retry", func() (bool, string) {
		return len(retries()) == 1, h.logs.String()
	})
	ctx := context.Background()
	for range 20 {
		// The engine may answer a pause or an unpause before the container's state shows it:
		// each is asked again until the state allows it.
		h.eventually(10*time.Second, "paused", func() (bool, string) {
			err := h.cli.ContainerPause(ctx, c.ID)
			return err == nil, fmt.Sprint(err)
		})
		h.eventually(10*time.Second, "unpaused", func() (bool, string) {
			err := h.cli.ContainerUnpause(ctx, c.ID)
			return err == nil, fmt.Sprint(err)
		})
	}
	h.eventually(10*time.Second, "the 40 events received", func() (bool, string) {
		p, u := metricValue(t, h.m, "sdctl_watch_docker_events_total", "pause"), metricValue(t, h.m, "sdctl_watch_docker_events_total", "unpause")
		// The engine's other containers count too.
		return p >= 20 && u >= 20, fmt.Sprintf("%v pause, %v unpause events", p, u)
	})
	if n := h.conn.tries.Load(); n != 1 {
		t.Fatalf("%d register attempts while the first retry is due, want 1: events must wait for it", n)
	}

	// The clock stands still but where the test moves it: the retry due is the only one, and
	// it runs at the time announced, not a nanosecond before.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, d := range want {
		if got := retries(); len(got) != i+1 || got[i] != d {
			t.Fatalf("retries announced %v, want %v next", got, want[:i+1])
		}
		if n := metricSum(t, h.m, "sdctl_watch_pending_containers"); n != 1 {
			t.Errorf("pending_containers = %v, want 1", n)
		}
		clk.Advance(d - time.Nanosecond)
		if n := metricSum(t, h.m, "sdctl_watch_retries_total"); n != float64(i) {
			t.Fatalf("retry %d ran before the %s it announced (retries_total %v)", i+1, d, n)
		}
		clk.Advance(time.Nanosecond)
		if n := metricSum(t, h.m, "sdctl_watch_retries_total"); n != float64(i+1) {
			t.Fatalf("retry %d did not run %s after it was announced (retries_total %v)", i+1, d, n)
		}
		h.eventually(10*time.Second, fmt.Sprintf("retry %d tried and the next announced", i+1), func() (bool, string) {
			return h.conn.tries.Load() == int64(i+2) && len(retries()) == i+2, h.logs.String()
		})
	}

	// Back up: the retry due registers the container.
	h.conn.down.Store(false)
	clk.Advance(time.Second)
	h.waitIDs(15*time.Second, h.id(c, "3000"))
	if !strings.Contains(h.logs.String(), "registry answers again") {
		t.Errorf("recovery not logged")
	}
	if n := h.conn.tries.Load(); n != int64(len(want)+2) {
		t.Errorf("%d register attempts, want %d: the first, one per retry, and the one that worked", n, len(want)+2)
	}
}

// The registry file removed behind the watcher's back is refilled without --resync.
func TestWatchRefillsARemovedRegistryFile(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	web := h.runWeb(2)
	a, b := web[0], web[1]
	b.Stop(t, time.Second)
	h.waitIDs(15*time.Second, h.id(a, "3000"))
	reconciles := metricSum(t, h.m, "sdctl_watch_reconciles_total")

	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.waitIDs(15*time.Second, h.id(a, "3000"))
	if !strings.Contains(h.logs.String(), "registry differs from what this node registered") {
		t.Errorf("the loss was not logged")
	}
	if n := metricSum(t, h.m, "sdctl_watch_reconciles_total"); n <= reconciles {
		t.Errorf("reconciles_total %v, want more than %v", n, reconciles)
	}
}

// A heartbeat that finds its instance gone reconciles the whole node: with a registry the
// watcher cannot follow, the TTL instance's renewal also brings back the other instances lost
// with it, which have no TTL.
func TestWatchHeartbeatFindingItsInstanceGoneReconciles(t *testing.T) {
	h := newHarness(t)
	h.conn.unwatchable.Store(true)
	clk := clock.NewFake(time.Now())
	h.start(watch.Options{Clock: clk}, nil)
	h.eventually(10*time.Second, "the watch given up", func() (bool, string) {
		return strings.Contains(h.logs.String(), "the backend cannot be watched"), h.logs.String()
	})
	// An hour, so that the file registry's own (real) clock never sees the TTL run out.
	ttl := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_CHECK_TTL=1h"}})
	plain := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	ids := []string{h.id(ttl, "3000"), h.id(plain, "3000")}
	got := h.waitIDs(15*time.Second, ids...)
	if got[ids[0]].TTL != time.Hour || got[ids[1]].TTL != 0 {
		t.Fatalf("TTLs %s and %s, want 1h and none", got[ids[0]].TTL, got[ids[1]].TTL)
	}

	ctx := context.Background()
	for _, id := range ids {
		if err := h.reg.Deregister(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The heartbeat is due at a third of the TTL, 20 min. The heartbeat loop takes the tick at
	// 19 min, and is done with it once it has taken the next: a heartbeat wrongly due by then
	// has been sent, and has logged the missing instance.
	received := func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := clk.BlockUntilReceived(ctx); err != nil {
			t.Fatalf("the watcher's ticks not taken: %v", err)
		}
	}
	clk.Advance(19 * time.Minute)
	received()
	clk.Advance(time.Second)
	received()
	if logs := h.logs.String(); strings.Contains(logs, "instance missing from the registry") {
		t.Fatalf("a heartbeat sent before it was due:\n%s", logs)
	}
	if got := h.owned(); len(got) != 0 {
		t.Fatalf("instances back before any heartbeat was due: %v", got)
	}
	clk.Advance(59 * time.Second) // the TTL instance's heartbeat is due
	h.waitIDs(15*time.Second, ids...)
	if n := metricValue(t, h.m, "sdctl_watch_reconciles_total", "instance-missing"); n != 1 {
		t.Errorf("reconciles_total{reason=instance-missing} = %v, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "instance missing from the registry; reconciling") {
		t.Error("the missing instance was not logged")
	}
}
