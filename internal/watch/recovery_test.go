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
)

// A container that keeps sending events while the registry is down is tried on its one retry
// schedule: events neither add schedules nor bring the next try forward.
func TestWatchRetriesOneSchedulePerContainer(t *testing.T) {
	h := newHarness(t)
	const maxBackoff = time.Second
	h.start(watch.Options{MaxBackoff: maxBackoff}, nil)
	h.conn.down.Store(true)
	c := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	h.eventually(10*time.Second, "a failed register", func() (bool, string) {
		return h.conn.tries.Load() > 0, h.logs.String()
	})
	first := time.Now()
	ctx := context.Background()
	for range 20 {
		if err := h.cli.ContainerPause(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		// The engine may report the pause before the container is frozen: unpause once it is.
		h.eventually(10*time.Second, "unpaused", func() (bool, string) {
			err := h.cli.ContainerUnpause(ctx, c.ID)
			return err == nil, fmt.Sprint(err)
		})
	}
	h.eventually(10*time.Second, "the 40 events received", func() (bool, string) {
		n := metricSum(t, h.m, "sdctl_watch_docker_events_total")
		return n >= 41, h.logs.String()
	})
	tries := h.conn.tries.Load()
	elapsed := time.Since(first)
	// The schedule from the first try: 0.1 s, 0.2 s, 0.4 s, 0.8 s, then every second. However
	// slow the machine, it cannot try more often than that.
	limit := int64(1 + 4 + elapsed/maxBackoff + 1)
	if tries > limit {
		t.Errorf("%d register attempts in %s while the registry was down, want at most %d (one schedule)", tries, elapsed.Round(time.Millisecond), limit)
	}
	if n := strings.Count(h.logs.String(), "retrying container"); int64(n) != tries {
		t.Errorf("%d retrying lines for %d failed attempts: each line should announce the one next try", n, tries)
	}
	h.conn.down.Store(false)
	h.waitIDs(15*time.Second, h.id(c, "3000"))
	if !strings.Contains(h.logs.String(), "registry answers again") {
		t.Errorf("recovery not logged")
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
