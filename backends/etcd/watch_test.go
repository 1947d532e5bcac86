package etcd

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

// recorder runs a Watch and collects its events.
type recorder struct {
	events chan registry.Event
	done   chan error
	cancel context.CancelFunc
}

func record(t *testing.T, b *Backend, req registry.WatchRequest) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{events: make(chan registry.Event, 256), done: make(chan error, 1), cancel: cancel}
	go func() {
		r.done <- b.Watch(ctx, req, func(ev registry.Event) error { r.events <- ev; return nil })
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// until collects events until one holds exactly want, checking that indexes only grow and no
// event repeats the previous set.
func (r *recorder) until(t *testing.T, after uint64, want ...string) registry.Event {
	t.Helper()
	var prev []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-r.events:
			got := ids(ev.Instances)
			if ev.Index <= after {
				t.Fatalf("event index %d not above %d (instances %v)", ev.Index, after, got)
			}
			if prev != nil && slices.Equal(prev, got) {
				t.Fatalf("event %d repeats the previous set %v", ev.Index, got)
			}
			after, prev = ev.Index, got
			if slices.Equal(got, want) {
				return ev
			}
		case err := <-r.done:
			t.Fatalf("Watch ended: %v", err)
		case <-timeout:
			t.Fatalf("no event with %v within 20s", want)
		}
	}
}

// watchWeb1 starts what the watch tests start from: a member of their own, a backend on it
// (logging to logs when set), web-1 registered, and a watch of web that has reported it.
func watchWeb1(t *testing.T, logs *testutil.SyncBuffer) (*etcdtest.Member, *Backend, *recorder, registry.Event) {
	t.Helper()
	m := etcdtest.StartSingle(t)
	b := open(t, Options{}, logs, m)
	register(t, b, "web-1")
	w := record(t, b, registry.WatchRequest{Name: "web"})
	return m, b, w, w.until(t, 0, "web-1")
}

func register(t *testing.T, b *Backend, ids ...string) {
	t.Helper()
	for i, id := range ids {
		if err := b.Register(ctxFor(t, 20*time.Second), registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: 1000 + i}); err != nil {
			t.Fatalf("Register(%s): %v", id, err)
		}
	}
}

func deregister(t *testing.T, b *Backend, id string) {
	t.Helper()
	if err := b.Deregister(ctxFor(t, 20*time.Second), id); err != nil {
		t.Fatalf("Deregister(%s): %v", id, err)
	}
}

// TestWatchResume stops a watch, changes the registry, and resumes at the last index: the
// resumed watch reports the changes made meanwhile, and nothing the first watch had seen.
func TestWatchResume(t *testing.T) {
	t.Parallel()
	_, b, w, first := watchWeb1(t, nil)
	register(t, b, "web-2")
	second := w.until(t, first.Index, "web-1", "web-2")
	w.cancel()

	// Changes while nobody watches: one instance added, one removed, and an unrelated service.
	register(t, b, "web-3")
	deregister(t, b, "web-1")
	if err := b.Register(ctxFor(t, 10*time.Second), registry.Instance{ID: "api-1", Name: "api", Address: "10.0.0.2", Port: 1}); err != nil {
		t.Fatal(err)
	}

	resumed := record(t, b, registry.WatchRequest{Name: "web", Index: second.Index})
	last := resumed.until(t, second.Index, "web-2", "web-3")

	// Resuming at the latest index reports nothing until the next change.
	again := record(t, b, registry.WatchRequest{Name: "web", Index: last.Index})
	select {
	case ev := <-again.events:
		t.Fatalf("watch resumed at the current index reported %v at %d", ids(ev.Instances), ev.Index)
	case <-time.After(300 * time.Millisecond):
	}
	deregister(t, b, "web-2")
	again.until(t, last.Index, "web-3")
}

// TestWatchCompacted resumes at a revision etcd has compacted away: the watch re-lists and
// reports the current set.
func TestWatchCompacted(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	m, b, w, first := watchWeb1(t, &logs)
	w.cancel()

	register(t, b, "web-2")
	ctx := ctxFor(t, 20*time.Second)
	cli := etcdtest.Client(t, m)
	// One more revision, outside the registry, so the revision right after first.Index is
	// compacted too.
	resp, err := cli.Put(ctx, "/unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	record(t, b, registry.WatchRequest{Name: "web", Index: first.Index}).until(t, first.Index, "web-1", "web-2")

	// A watch whose start revision is compacted while it is being (re)established: the
	// resume path of a broken watch. It must re-list rather than fail or stall.
	events := make(chan registry.Event, 4)
	ws := &watchState{
		b:      b,
		prefix: b.keys.service("web"),
		set:    map[string]registry.Instance{},
		rev:    int64(first.Index),
		sent:   first.Instances,
		fn: func(ev registry.Event) error {
			events <- ev
			return nil
		},
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ws.follow(wctx) }()
	defer func() { cancel(); <-done }()
	select {
	case ev := <-events:
		if got := ids(ev.Instances); !slices.Equal(got, []string{"web-1", "web-2"}) {
			t.Fatalf("re-listed set %v", got)
		}
	case err := <-done:
		t.Fatalf("follow ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the compaction")
	}
	if !strings.Contains(logs.String(), "compacted; re-listing") {
		t.Errorf("the watch did not go through its re-list path:\n%s", logs.String())
	}
}

// TestWatchMemberRestart restarts the only member under a running watch: the watch resumes
// after the last revision it saw and reports the change made after the restart.
func TestWatchMemberRestart(t *testing.T) {
	t.Parallel()
	m, b, w, first := watchWeb1(t, nil)
	m.Kill()
	m.Restart(t)
	register(t, b, "web-2")
	w.until(t, first.Index, "web-1", "web-2")
}
