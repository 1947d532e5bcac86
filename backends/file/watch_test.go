package file

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

func expectIDs(t *testing.T, ev registry.Event, want ...string) {
	t.Helper()
	if got := instanceIDs(ev.Instances); !slices.Equal(got, want) {
		t.Fatalf("event %d holds %q, want %q", ev.Index, got, want)
	}
}

// TestWatchOnlyRealChanges checks that writes which leave the watched set as it was (other
// services, heartbeats) produce no event, so the next event is the next real change.
func TestWatchOnlyRealChanges(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := t.Context()
	inst := webInstance("web-1", 1)
	inst.TTL = time.Hour
	if err := b.Register(ctx, inst); err != nil {
		t.Fatal(err)
	}
	events, _ := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	expectIDs(t, registrytest.NextEvent(t, events, 5*time.Second), "web-1")

	if err := b.Register(ctx, registry.Instance{ID: "api-1", Name: "api", Address: "10.0.0.9", Port: 9}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, webInstance("web-2", 2)); err != nil {
		t.Fatal(err)
	}
	ev := registrytest.NextEvent(t, events, 5*time.Second)
	expectIDs(t, ev, "web-1", "web-2")
	if ev.Index != 4 {
		t.Errorf("event index %d, want the document revision 4", ev.Index)
	}
}

// TestWatchLatency measures the delay from an acknowledged write in another Backend (as
// another process would make it) to the event.
func TestWatchLatency(t *testing.T) {
	b := openTemp(t)
	writer, err := Open(Options{Path: b.Path()})
	if err != nil {
		t.Fatal(err)
	}
	events, _ := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	registrytest.NextEvent(t, events, 5*time.Second)
	var delays []time.Duration
	for i := range 7 {
		if err := writer.Register(t.Context(), webInstance("web-"+string(rune('a'+i)), i+1)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ev := registrytest.NextEvent(t, events, 5*time.Second)
		delays = append(delays, time.Since(start))
		if len(ev.Instances) != i+1 {
			t.Fatalf("event holds %d instances, want %d", len(ev.Instances), i+1)
		}
	}
	slices.Sort(delays)
	t.Logf("write-to-event delays: %v", delays)
	// The median keeps a loaded test machine from failing the test on one slow sample.
	if median := delays[len(delays)/2]; median > 100*time.Millisecond {
		t.Errorf("median delay from write to event is %v, want well under 100ms", median)
	}
}

func TestWatchExpiry(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	inst := webInstance("web-1", 1)
	inst.TTL = 300 * time.Millisecond
	if err := b.Register(t.Context(), inst); err != nil {
		t.Fatal(err)
	}
	events, _ := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	first := registrytest.NextEvent(t, events, 5*time.Second)
	if first.Instances[0].Health != registry.HealthPassing {
		t.Fatalf("first event: health %q", first.Instances[0].Health)
	}
	expired := registrytest.NextEvent(t, events, 5*time.Second)
	if h := expired.Instances[0].Health; h != registry.HealthCritical || expired.Index != first.Index {
		t.Errorf("expiry event: health %q index %d, want critical at the same index %d", h, expired.Index, first.Index)
	}
	if err := b.Heartbeat(t.Context(), "web-1"); err != nil {
		t.Fatal(err)
	}
	if revived := registrytest.NextEvent(t, events, 5*time.Second); revived.Instances[0].Health != registry.HealthPassing {
		t.Errorf("after heartbeat: health %q", revived.Instances[0].Health)
	}
}

// TestWatchHandEdit covers a person editing the file in place (no rename), including the
// moment an editor leaves it truncated.
func TestWatchHandEdit(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	events, done := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	registrytest.NextEvent(t, events, 5*time.Second)

	data, _ := os.ReadFile(b.Path())
	if err := os.WriteFile(b.Path(), data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), `"port":1`, `"port":1,"health":"maintenance"`, 1)
	time.Sleep(50 * time.Millisecond) // let the watch see the truncated file
	if err := os.WriteFile(b.Path(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Instances[0].Health != registry.HealthMaintenance {
			t.Errorf("after the edit: health %q", ev.Instances[0].Health)
		}
	case err := <-done:
		t.Fatalf("Watch ended on a briefly truncated file: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event after a hand edit")
	}
}

func TestWatchFailsOnLastingCorruption(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	b.poll = 50 * time.Millisecond
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	events, done := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	registrytest.NextEvent(t, events, 5*time.Second)
	if err := os.WriteFile(b.Path(), []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("Watch ended with %v, want a *CorruptError", err)
		}
	case <-time.After(corruptGrace + 5*time.Second):
		t.Fatal("Watch did not give up on a file that stayed corrupt")
	}
}

func TestWatchEndsOnClose(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	events, done := registrytest.WatchEvents(t, b, registry.WatchRequest{})
	registrytest.NextEvent(t, events, 5*time.Second)
	_ = b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("Watch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end on Close")
	}
}
