package watch

// The watcher's schedules on a fake clock, without Docker: retries of a container's sync,
// the grace given to its own writes, heartbeats, and the backoffs of Connect, of a failed
// reconcile and of waiting for the engine.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

var errDown = fmt.Errorf("registry unreachable: %w", registry.ErrUnavailable)

// clocked is a watcher on a fake clock whose log the test reads. Its Docker is nil: the tests
// call the parts that do not use it.
type clocked struct {
	*Watcher
	clk  *clock.Fake
	logs *testutil.SyncBuffer
	t0   time.Time
}

// tempRegistry opens a file registry in a t.TempDir(), closed when the test ends.
func tempRegistry(t *testing.T) *file.Backend {
	t.Helper()
	reg, err := file.Open(file.Options{Path: filepath.Join(t.TempDir(), "registry.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func newClocked(t *testing.T, open Opener, opt Options) *clocked {
	t.Helper()
	c := &clocked{clk: clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), logs: &testutil.SyncBuffer{}}
	c.t0 = c.clk.Now()
	opt.Clock = c.clk
	opt.Spec.Node = "node-1"
	opt.Log = hclog.New(&hclog.LoggerOptions{Output: c.logs, Level: hclog.Info})
	c.Watcher = New(nil, open, opt)
	return c
}

// lines returns the log lines that contain msg.
func (c *clocked) lines(msg string) []string {
	var out []string
	for l := range strings.Lines(c.logs.String()) {
		if strings.Contains(l, msg) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockUntil waits until n timers are set on c's clock, failing the test after 10 s.
func (c *clocked) blockUntil(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.clk.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("%d timers set, want %d", c.clk.Waiters(), n)
	}
}

// read returns the value of a series without a label.
func read(f *family) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.values[""]
}

// drainQueue empties the queue of containers to sync, as the workers would.
func (c *clocked) drainQueue() []string {
	var ids []string
	for {
		select {
		case id := <-c.queue:
			c.mu.Lock()
			delete(c.Watcher.queued, id)
			c.mu.Unlock()
			ids = append(ids, id)
		default:
			slices.Sort(ids)
			return ids
		}
	}
}

// A container whose sync keeps failing has one retry due at a time, at the time its log line
// announces: 0.1 s doubling up to MaxBackoff. Events meanwhile neither queue it nor bring the
// retry forward.
func TestRetryIsOneScheduleThatEventsWaitFor(t *testing.T) {
	w := newClocked(t, nil, Options{MaxBackoff: time.Second})
	const id = "c1"
	w.retryLater(id, errDown) // the first sync failed
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, d := range want {
		for range 40 {
			w.enqueue(id) // events of the container while the registry is down
		}
		if got := w.drainQueue(); len(got) != 0 {
			t.Fatalf("retry %d: events queued %v while the retry is due", i+1, got)
		}
		if n := w.clk.Waiters(); n != 1 {
			t.Fatalf("retry %d: %d timers set, want the one retry", i+1, n)
		}
		if n := w.m.pending.value(); n != 1 {
			t.Errorf("retry %d: pending_containers = %v, want 1", i+1, n)
		}
		lines := w.lines("retrying container")
		if len(lines) != i+1 || !strings.HasSuffix(lines[i], "in="+d.String()) {
			t.Fatalf("retry %d: announced %q, want %d lines, the last in=%s", i+1, lines, i+1, d)
		}
		w.mu.Lock()
		at := w.retries[id].at
		w.mu.Unlock()
		if want := w.clk.Now().Add(d); !at.Equal(want) {
			t.Errorf("retry %d: due at %v, want %v (now + %s, as announced)", i+1, at.Sub(w.t0), want.Sub(w.t0), d)
		}

		w.clk.Advance(d - time.Nanosecond)
		if got := w.drainQueue(); len(got) != 0 || read(w.m.retries.f) != float64(i) {
			t.Fatalf("retry %d ran before its time: queued %v", i+1, got)
		}
		w.clk.Advance(time.Nanosecond)
		if got := w.drainQueue(); !slices.Equal(got, []string{id}) || read(w.m.retries.f) != float64(i+1) {
			t.Fatalf("retry %d at its time: queued %v, retries_total %v", i+1, got, read(w.m.retries.f))
		}
		w.retryLater(id, errDown) // the retry fails too
	}
}

// A failure while the container's retry is due (a reconcile synced it meanwhile) moves that
// retry, one step further on, rather than adding a second one.
func TestRetryFailureWhileDueMovesIt(t *testing.T) {
	w := newClocked(t, nil, Options{})
	w.retryLater("c1", errDown)
	w.clk.Advance(50 * time.Millisecond)
	w.retryLater("c1", errDown)
	if n := w.clk.Waiters(); n != 1 {
		t.Fatalf("%d timers set, want 1", n)
	}
	w.clk.Advance(199 * time.Millisecond)
	if got := w.drainQueue(); len(got) != 0 {
		t.Fatalf("retried at the first schedule's time: %v", got)
	}
	w.clk.Advance(time.Millisecond)
	if got := w.drainQueue(); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("queued %v 200 ms after the second failure, want [c1]", got)
	}
	w.clk.Advance(time.Hour)
	if n := read(w.m.retries.f); n != 1 {
		t.Errorf("retries_total = %v, want 1", n)
	}
}

// A retry that fires just as a failure replaces it (its function waiting for the watcher's
// lock, as when a reconcile's sync of the container fails at that moment) does nothing: the
// replacement is the container's one schedule, and the next failure still leaves one.
func TestRetryThatFiresAsItIsReplacedDoesNothing(t *testing.T) {
	w := newClocked(t, nil, Options{})
	w.retryLater("c1", errDown) // due at 100 ms

	w.mu.Lock()
	advanced := make(chan struct{})
	go func() {
		defer close(advanced)
		w.clk.Advance(100 * time.Millisecond) // the retry fires and waits for w.mu
	}()
	waitFor(t, "the retry fired", func() bool { return w.clk.Waiters() == 0 })
	d := w.scheduleRetry("c1") // the failure, under the lock the fired retry waits for
	w.mu.Unlock()
	<-advanced
	if d != 200*time.Millisecond {
		t.Fatalf("the replacement is due in %s, want 200ms", d)
	}
	if got := w.drainQueue(); len(got) != 0 {
		t.Fatalf("the replaced retry queued %v", got)
	}
	if n := w.clk.Waiters(); n != 1 {
		t.Fatalf("%d timers set, want the replacement only", n)
	}
	w.clk.Advance(200*time.Millisecond - time.Nanosecond)
	if got := w.drainQueue(); len(got) != 0 {
		t.Fatalf("queued %v before the replacement was due", got)
	}
	w.clk.Advance(time.Nanosecond)
	if got := w.drainQueue(); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("the replacement queued %v, want [c1]", got)
	}
	w.retryLater("c1", errDown)
	if n := w.clk.Waiters(); n != 1 {
		t.Errorf("%d timers set after the next failure, want 1", n)
	}
	w.clk.Advance(time.Hour)
	if got, n := w.drainQueue(), read(w.m.retries.f); !slices.Equal(got, []string{"c1"}) || n != 2 {
		t.Errorf("after an hour: queued %v, retries_total %v; want [c1], 2", got, n)
	}
}

// A registry that answers again brings every due retry forward; a container that synced has
// none left; a retried container that fails again backs off further.
func TestRetryNowAndClearRetry(t *testing.T) {
	w := newClocked(t, nil, Options{})
	for _, id := range []string{"a", "b", "c"} {
		w.retryLater(id, errDown)
	}
	w.clearRetry("b")
	if n, p := w.clk.Waiters(), w.m.pending.value(); n != 2 || p != 2 {
		t.Fatalf("after clearRetry: %d timers, pending_containers %v; want 2, 2", n, p)
	}
	w.retryNow()
	if got := w.drainQueue(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("retryNow queued %v, want [a c]", got)
	}
	if n := w.clk.Waiters(); n != 0 {
		t.Errorf("%d timers left after retryNow", n)
	}
	w.clk.Advance(time.Hour)
	if got, n := w.drainQueue(), read(w.m.retries.f); len(got) != 0 || n != 2 {
		t.Errorf("after retryNow the old schedules still ran: queued %v, retries_total %v", got, n)
	}
	w.retryLater("a", errDown)
	if l := w.lines("retrying container"); !strings.HasSuffix(l[len(l)-1], "in=200ms") {
		t.Errorf("a retry brought forward that fails again announces %q, want the next step, 200ms", l[len(l)-1])
	}
}

// An instance the watcher wrote a moment ago and the registry's stream does not show yet is
// judged again when viewGrace has passed since the write, by one timer, and only then counts
// as lost.
func TestViewRechecksWhenTheGraceEnds(t *testing.T) {
	w := newClocked(t, nil, Options{})
	w.reconciled = true
	w.owned["i1"] = ownedInst{container: "c1", hash: "h1"}
	w.wroteAt["i1"] = w.clk.Now()
	w.observeView(nil)
	w.clk.Advance(1500 * time.Millisecond)
	w.observeView(nil)
	if n := w.clk.Waiters(); n != 1 {
		t.Fatalf("%d timers set, want one recheck", n)
	}
	w.clk.Advance(viewGrace - 1500*time.Millisecond - time.Nanosecond)
	if len(w.reconcile) != 0 {
		t.Fatalf("reconcile requested within the grace: %q", <-w.reconcile)
	}
	w.clk.Advance(time.Nanosecond)
	select {
	case reason := <-w.reconcile:
		if reason != "registry-changed" {
			t.Errorf("reconcile for %q, want registry-changed", reason)
		}
	default:
		t.Fatal("no reconcile once the grace ended")
	}
	if n := read(w.m.registryLost.f); n != 1 {
		t.Errorf("registry_changed_total = %v, want 1", n)
	}

	// The timer is set again for a later write, which the stream then shows in time: no loss.
	w.lostPending = false
	shown := []registry.Instance{{ID: "i1", Meta: map[string]string{spec.MetaNode: "node-1", spec.MetaSpec: "h1"}}}
	w.observeView(shown) // the reconcile put i1 back
	w.owned["i2"] = ownedInst{container: "c2", hash: "h2"}
	w.wroteAt["i2"] = w.clk.Now()
	w.observeView(shown)
	if n := w.clk.Waiters(); n != 1 {
		t.Fatalf("%d timers set for a second recent write, want 1", n)
	}
	w.clk.Advance(time.Second)
	shown = append(shown, registry.Instance{ID: "i2", Meta: map[string]string{spec.MetaNode: "node-1", spec.MetaSpec: "h2"}})
	w.observeView(shown)
	w.clk.Advance(time.Hour)
	if len(w.reconcile) != 0 {
		t.Errorf("reconcile requested for a write the stream showed in time: %q", <-w.reconcile)
	}

	// A write the stream still lacks when its grace ends is lost, however late it came.
	w.owned["i3"] = ownedInst{container: "c3", hash: "h3"}
	w.wroteAt["i3"] = w.clk.Now()
	w.observeView(shown)
	w.clk.Advance(viewGrace)
	if len(w.reconcile) != 1 {
		t.Error("no reconcile for a later write missing when its grace ended")
	}
}

// liveConn is a registry backend whose process never dies.
type liveConn struct{ registry.Registry }

func (liveConn) Exited() bool { return false }

// streamFirstConn is a registry whose change stream shows each write before the call that
// made it returns, as a Consul watch can: before returns, onWrite is called with the
// registry's instances after the write.
type streamFirstConn struct {
	liveConn
	onWrite func([]registry.Instance)
}

func (c streamFirstConn) all(ctx context.Context) []registry.Instance {
	var all []registry.Instance
	svcs, _ := c.Services(ctx)
	for _, s := range svcs {
		insts, _ := c.Instances(ctx, registry.Query{Name: s.Name})
		all = append(all, insts...)
	}
	return all
}

func (c streamFirstConn) Register(ctx context.Context, inst registry.Instance) error {
	if err := c.liveConn.Register(ctx, inst); err != nil {
		return err
	}
	c.onWrite(c.all(ctx))
	return nil
}

func (c streamFirstConn) Deregister(ctx context.Context, id string) error {
	if err := c.liveConn.Deregister(ctx, id); err != nil {
		return err
	}
	c.onWrite(c.all(ctx))
	return nil
}

// The watcher's own writes, shown by the stream before the calls that made them return, are
// not changes made by someone else: no reconcile, neither at once nor when the grace ends.
func TestOwnWritesSeenFirstOnTheStreamAreNotLosses(t *testing.T) {
	reg := tempRegistry(t)
	w := newClocked(t, nil, Options{})
	w.reg = streamFirstConn{liveConn{reg}, func(insts []registry.Instance) { w.observeView(insts) }}
	w.reconciled = true
	w.observeView(nil)
	ctx := context.Background()
	inst := registry.Instance{ID: "i1", Name: "web", Address: "10.0.0.1", Port: 80,
		Meta: map[string]string{spec.MetaNode: "node-1", spec.MetaContainer: "c1", spec.MetaSpec: "h1"}}
	if _, err := w.register(ctx, "web-1", inst); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(time.Hour)
	if err := w.deregister(ctx, "web-1", "i1", "container stopped"); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(time.Hour)
	if len(w.reconcile) != 0 {
		t.Errorf("reconcile requested for the watcher's own write: %q\n%s", <-w.reconcile, w.logs.String())
	}
	if l := w.lines("registry differs"); len(l) != 0 {
		t.Errorf("own writes logged as changes: %q", l)
	}

	// Someone else's write is still one.
	other := inst
	other.ID = "i2"
	if err := reg.Register(ctx, other); err != nil {
		t.Fatal(err)
	}
	w.observeView([]registry.Instance{other})
	if len(w.reconcile) != 1 {
		t.Error("no reconcile for an instance of this node the watcher never wrote")
	}
}

// Heartbeats are due every third of each instance's TTL, or every TTLRefresh when that is sooner,
// counted on the watcher's clock from the registration and from each heartbeat; instances
// without a TTL, critical, or of a container kept after a failed exit are not renewed.
func TestHeartbeatsDueOnTheClock(t *testing.T) {
	reg := tempRegistry(t)
	w := newClocked(t, nil, Options{TTLRefresh: 4 * time.Second})
	w.reg = liveConn{reg}
	ctx := context.Background()
	for id, ttl := range map[string]time.Duration{"long": time.Hour, "short": 3 * time.Second} {
		inst := registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: 80, TTL: ttl,
			Meta: map[string]string{spec.MetaNode: "node-1", spec.MetaContainer: "c1", spec.MetaSpec: "h-" + id}}
		if _, err := w.register(ctx, "web-1", inst); err != nil {
			t.Fatal(err)
		}
	}
	w.owned["none"] = ownedInst{container: "c1"}
	w.owned["critical"] = ownedInst{container: "c1", ttl: time.Second, health: registry.HealthCritical}
	w.owned["kept"] = ownedInst{container: "c2", ttl: time.Second}
	w.kept["c2"] = true

	var beats []string
	for range 70 {
		w.clk.Advance(100 * time.Millisecond)
		due := w.dueHeartbeats(w.clk.Now())
		slices.Sort(due)
		for _, id := range due {
			w.heartbeat(ctx, id)
			beats = append(beats, fmt.Sprintf("%s@%s", id, w.clk.Since(w.t0)))
		}
	}
	want := []string{"short@1s", "short@2s", "short@3s", "long@4s", "short@4s", "short@5s", "short@6s", "short@7s"}
	if !slices.Equal(beats, want) {
		t.Errorf("heartbeats %v, want %v", beats, want)
	}
	if n := read(w.m.heartbeats.f); n != float64(len(want)) {
		t.Errorf("heartbeats_total = %v, want %d", n, len(want))
	}
}

// Connect tries a registry that is not up yet after 250 ms, doubling up to RetryInterval,
// RetryAttempts more times, then gives up.
func TestConnectBacksOffOnTheClock(t *testing.T) {
	var (
		mu    sync.Mutex
		tries []time.Duration
		w     *clocked
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(tries)
	}
	w = newClocked(t, func(context.Context) (Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, w.clk.Since(w.t0))
		return nil, fmt.Errorf("connect: %w", registry.ErrUnavailable)
	}, Options{RetryAttempts: 4, RetryInterval: time.Second})
	errc := make(chan error, 1)
	go func() { errc <- w.Connect(context.Background()) }()

	for i, d := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second} {
		w.blockUntil(t, 1)
		w.clk.Advance(d - time.Nanosecond)
		// Fired early, the timer would be gone, or the next try made.
		if n, tried := w.clk.Waiters(), count(); n != 1 || tried != i+1 {
			t.Fatalf("try %d: %d timers, %d tries %s after the last; want 1, %d", i+2, n, tried, d-time.Nanosecond, i+1)
		}
		w.clk.Advance(time.Nanosecond)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Connect succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect did not give up after RetryAttempts")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []time.Duration{0, 250 * time.Millisecond, 750 * time.Millisecond, 1750 * time.Millisecond, 2750 * time.Millisecond}; !slices.Equal(tries, want) {
		t.Errorf("tried at %v, want %v", tries, want)
	}
	if n := len(w.lines("registry not ready, retrying")); n != 4 {
		t.Errorf("%d retry lines, want 4", n)
	}
}

// downConn is a file registry that cannot list its services.
type downConn struct{ liveConn }

func (downConn) Services(context.Context) ([]registry.Service, error) { return nil, errDown }

// A reconcile that fails is tried again after 0.5 s doubling up to MaxBackoff; one that runs for
// another reason meanwhile replaces that retry with its own.
func TestReconcileRetriesOnTheClock(t *testing.T) {
	reg := tempRegistry(t)
	w := newClocked(t, nil, Options{MaxBackoff: 2 * time.Second})
	w.reg = downConn{liveConn{reg}}
	reconciles := func(reason string) float64 {
		w.m.reconciles.f.mu.Lock()
		defer w.m.reconciles.f.mu.Unlock()
		return w.m.reconciles.f.values[reason]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.reconcileLoop(ctx) }()
	defer func() { cancel(); <-done }()

	w.requestReconcile("start")
	for i, d := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second} {
		w.blockUntil(t, 1)
		if n := reconciles("retry"); n != float64(i) {
			t.Fatalf("%v retries, want %d", n, i)
		}
		w.clk.Advance(d - time.Nanosecond)
		if n, r := w.clk.Waiters(), reconciles("retry"); n != 1 || r != float64(i) {
			t.Fatalf("retry %d ran before %s: %d timers, %v retries", i+1, d, n, r)
		}
		w.clk.Advance(time.Nanosecond)
		waitFor(t, fmt.Sprintf("retry %d", i+1), func() bool { return reconciles("retry") == float64(i+1) })
	}
	waitFor(t, "the fifth failure announced", func() bool { return len(w.lines("failed: reconcile")) == 5 })

	// A reconcile for another reason, failing too, moves the retry rather than adding one.
	w.clk.Advance(time.Second)
	w.requestReconcile("registry-changed")
	waitFor(t, "the other reconcile failed", func() bool { return len(w.lines("failed: reconcile")) == 6 })
	if n := w.clk.Waiters(); n != 1 {
		t.Fatalf("%d timers, want the one retry", n)
	}
	w.clk.Advance(2*time.Second - time.Nanosecond)
	if n := reconciles("retry"); n != 4 {
		t.Fatalf("the replaced retry ran: %v retries", n)
	}
	w.clk.Advance(time.Nanosecond)
	waitFor(t, "the moved retry", func() bool { return reconciles("retry") == 5 })
}

// Waiting for the engine asks again every two seconds, and ends when its context does.
func TestWaitForNodeAsksEveryTwoSeconds(t *testing.T) {
	docker, err := NewDocker("unix://" + filepath.Join(t.TempDir(), "no-engine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	clk := clock.NewFake(time.Now())
	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		node string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		node, err := waitForNode(ctx, clk, docker, time.Second, hclog.New(&hclog.LoggerOptions{Output: logs}))
		res <- result{node, err}
	}()
	asks := func() int { return strings.Count(logs.String(), "waiting for the Docker engine") }
	for i := 1; i <= 3; i++ {
		waitFor(t, fmt.Sprintf("ask %d", i), func() bool { return asks() == i && clk.Waiters() == 1 })
		clk.Advance(2*time.Second - time.Nanosecond)
		if n, a := clk.Waiters(), asks(); n != 1 || a != i {
			t.Fatalf("asked again before 2s: %d timers, %d asks", n, a)
		}
		clk.Advance(time.Nanosecond)
	}
	waitFor(t, "ask 4", func() bool { return asks() == 4 && clk.Waiters() == 1 })
	cancel()
	select {
	case r := <-res:
		if r.node != "" || r.err != nil {
			t.Errorf("waitForNode = %q, %v; want \"\", nil", r.node, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitForNode did not end with its context")
	}
	if n := clk.Waiters(); n != 0 {
		t.Errorf("%d timers left set", n)
	}
}
