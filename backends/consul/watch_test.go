package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

func TestWatchRetriesUntilCancelled(t *testing.T) {
	const token = "9d1f0c4e-aaaa-bbbb-cccc-ddddeeeeffff"
	var logs testutil.SyncBuffer
	addr := registrytest.ClosedAddr(t)
	b := open(t, func(o *Options) {
		o.Token = token
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	err := b.Watch(ctx, registry.WatchRequest{Name: "web"}, func(registry.Event) error {
		return errors.New("no event can come from a closed port")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch = %v, want the context's error", err)
	}
	out := logs.String()
	// Backoff from 250ms, doubling: three or four attempts in 1.5s, not hundreds.
	if n := strings.Count(out, "retrying"); n < 2 || n > 6 {
		t.Errorf("%d retries logged in 1.5s:\n%s", n, out)
	}
	if !strings.Contains(out, addr) || strings.Contains(out, token) {
		t.Errorf("log does not name %s or shows the token:\n%s", addr, out)
	}
}

// TestWatchFailsOverToAnotherCluster lists two unrelated servers: when the first dies the
// watch moves to the second, whose index is behind, and reports the second's state at once
// instead of holding a blocking query until its index catches up.
func TestWatchFailsOverToAnotherCluster(t *testing.T) {
	skipShort(t, "starts Consul servers")
	t.Parallel()
	a1, a2 := consultest.StartDev(t), consultest.StartDev(t)
	ctx := testCtx(t, time.Minute)
	first := open(t, nil, a1.HTTPAddr)
	// Push a1's index well past a2's.
	for i := range 20 {
		if err := first.Register(ctx, registry.Instance{ID: fmt.Sprintf("pad-%d", i), Name: "pad", Address: "10.0.0.1", Port: 1 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000}); err != nil {
		t.Fatal(err)
	}
	if err := open(t, nil, a2.HTTPAddr).Register(ctx, registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 3000}); err != nil {
		t.Fatal(err)
	}

	b := open(t, func(o *Options) { o.Wait = 30 * time.Second }, a1.HTTPAddr, a2.HTTPAddr)
	events, _ := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	ev1 := registrytest.NextEvent(t, events, 10*time.Second)
	if got := ids(ev1.Instances); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("first event %v, want web-1", got)
	}
	a1.Kill()
	start := time.Now()
	ev2 := registrytest.NextEvent(t, events, 10*time.Second)
	if got := ids(ev2.Instances); !slices.Equal(got, []string{"web-2"}) || ev2.Index >= ev1.Index {
		t.Fatalf("event after failover: %v at index %d, want web-2 below index %d", got, ev2.Index, ev1.Index)
	}
	t.Logf("failover event after %v", time.Since(start))
}
