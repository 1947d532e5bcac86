package clock_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/watch/clock"
)

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// received returns what c holds now, without waiting.
func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-c:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestFakeStandsStillUntilAdvanced(t *testing.T) {
	c := clock.NewFake(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Errorf("Now after Advance(90s) = %v", got)
	}
	if got := c.Since(start); got != 90*time.Second {
		t.Errorf("Since(start) = %v, want 90s", got)
	}
	c.Advance(-time.Hour)
	if got := c.Since(start); got != 90*time.Second {
		t.Errorf("a negative Advance moved the clock to %v", got)
	}
}

// Timers fire in the order of their times, those set for the same time in the order they were
// set, each seeing the clock at its own time; none fires early.
func TestFakeFiresTimersInOrder(t *testing.T) {
	c := clock.NewFake(start)
	var fired []string // the functions run inside Advance, on this goroutine
	at := func(name string) func() {
		return func() { fired = append(fired, name+"@"+c.Since(start).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(2*time.Second, at("b1"))
	c.AfterFunc(2*time.Second, at("b2"))
	c.AfterFunc(10*time.Second, at("late"))
	ch := c.NewTimer(2500 * time.Millisecond)

	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired before their time: %v", fired)
	}
	c.Advance(2001 * time.Millisecond) // to 3s
	want := []string{"a@1s", "b1@2s", "b2@2s", "c@3s"}
	if !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
	if got, ok := received(ch.C()); !ok || !got.Equal(start.Add(2500*time.Millisecond)) {
		t.Errorf("timer channel holds %v, %v; want the time it fired, 2.5s", got, ok)
	}
	if n := c.Waiters(); n != 1 {
		t.Errorf("%d waiters, want 1 (the 10s timer)", n)
	}
}

// A function of AfterFunc that sets a timer due within the same Advance sees it fire there.
func TestFakeFiresTimersSetWhileAdvancing(t *testing.T) {
	c := clock.NewFake(start)
	var times []time.Duration
	var step func()
	step = func() {
		times = append(times, c.Since(start))
		if len(times) < 4 {
			c.AfterFunc(time.Second, step)
		}
	}
	c.AfterFunc(time.Second, step)
	c.Advance(time.Minute)
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}; !slices.Equal(times, want) {
		t.Errorf("chained timers fired at %v, want %v", times, want)
	}
}

func TestFakeTimerStopAndReset(t *testing.T) {
	c := clock.NewFake(start)
	calls := 0
	fn := c.AfterFunc(time.Second, func() { calls++ })
	if !fn.Stop() {
		t.Error("Stop of a pending timer = false")
	}
	if fn.Stop() {
		t.Error("second Stop = true")
	}
	c.Advance(time.Hour)
	if calls != 0 {
		t.Fatal("a stopped timer fired")
	}

	// Reset of a stopped timer sets it again, from now.
	if fn.Reset(time.Second) {
		t.Error("Reset of a stopped timer reports it pending")
	}
	c.Advance(999 * time.Millisecond)
	// Reset of a pending timer moves it rather than adding one.
	if !fn.Reset(time.Second) {
		t.Error("Reset of a pending timer reports it was not")
	}
	if n := c.Waiters(); n != 1 {
		t.Errorf("%d waiters after Reset, want 1", n)
	}
	c.Advance(999 * time.Millisecond)
	if calls != 0 {
		t.Fatal("a reset timer fired at its old time")
	}
	c.Advance(time.Millisecond)
	if calls != 1 {
		t.Fatalf("fired %d times at its new time, want 1", calls)
	}
	if fn.Stop() {
		t.Error("Stop of a fired timer = true")
	}
	c.Advance(time.Hour)
	if calls != 1 {
		t.Errorf("fired %d times, want once", calls)
	}

	// A value sent and not received is dropped by Stop and Reset.
	tm := c.NewTimer(time.Second)
	c.Advance(time.Second)
	if tm.Stop() {
		t.Error("Stop of a fired timer = true")
	}
	if _, ok := received(tm.C()); ok {
		t.Error("a value from before Stop is received after it")
	}
	c.Advance(time.Second)
	tm.Reset(time.Second)
	c.Advance(500 * time.Millisecond)
	if _, ok := received(tm.C()); ok {
		t.Error("the timer fired before its reset time")
	}
	c.Advance(500 * time.Millisecond)
	if got, ok := received(tm.C()); !ok || !got.Equal(c.Now()) {
		t.Errorf("after Reset the timer sent %v, %v; want %v", got, ok, c.Now())
	}
}

func TestFakeTicker(t *testing.T) {
	c := clock.NewFake(start)
	tk := c.NewTicker(time.Second)
	var got []time.Duration
	for range 3 {
		c.Advance(time.Second)
		v, ok := received(tk.C())
		if !ok {
			t.Fatalf("no tick after %v", c.Since(start))
		}
		got = append(got, v.Sub(start))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("ticks at %v, want %v", got, want)
	}

	// A reader that falls behind gets the first tick it missed, not a backlog.
	c.Advance(5 * time.Second)
	if v, ok := received(tk.C()); !ok || v.Sub(start) != 4*time.Second {
		t.Errorf("after 5 unread periods: %v, %v; want the tick at 4s", v.Sub(start), ok)
	}
	if _, ok := received(tk.C()); ok {
		t.Error("ticks queued up for a slow reader")
	}

	tk.Reset(3 * time.Second) // now 8s: next ticks at 11s, 14s
	c.Advance(2 * time.Second)
	if _, ok := received(tk.C()); ok {
		t.Error("tick before the reset period passed")
	}
	c.Advance(time.Second)
	if v, ok := received(tk.C()); !ok || v.Sub(start) != 11*time.Second {
		t.Errorf("after Reset(3s) at 8s: %v, %v; want the tick at 11s", v.Sub(start), ok)
	}

	tk.Stop()
	c.Advance(time.Minute)
	if _, ok := received(tk.C()); ok {
		t.Error("a stopped ticker ticked")
	}
	if n := c.Waiters(); n != 0 {
		t.Errorf("%d waiters after Stop, want 0", n)
	}
}

// BlockUntil returns once enough timers are set, so a test advances the clock only after the
// code it drives has set the timer it means to fire.
func TestFakeBlockUntil(t *testing.T) {
	c := clock.NewFake(start)
	done := make(chan time.Duration)
	go func() {
		tm := c.NewTimer(time.Second)
		<-tm.C()
		done <- c.Since(start)
	}()
	c.BlockUntil(1)
	c.Advance(time.Second)
	if got := <-done; got != time.Second {
		t.Errorf("the goroutine woke at %v, want 1s", got)
	}
	if n := c.Waiters(); n != 0 {
		t.Errorf("%d waiters after the timer fired, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.BlockUntilContext(ctx, 1); err == nil {
		t.Error("BlockUntilContext returned without a timer set")
	}
}

// BlockUntilReceived returns once every value sent is received: a loop on a ticker has then
// taken its tick, and once it takes the next, it is done with the one before.
func TestFakeBlockUntilReceived(t *testing.T) {
	c := clock.NewFake(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.BlockUntilReceived(ctx); err != nil || c.Unreceived() != 0 {
		t.Fatalf("nothing sent: %v, %d unreceived", err, c.Unreceived())
	}

	tk := c.NewTicker(time.Second)
	gate := make(chan struct{})
	var (
		mu   sync.Mutex
		done []time.Duration // the ticks the loop is done with, by the clock it read
	)
	go func() {
		for range tk.C() {
			<-gate // the work on this tick
			mu.Lock()
			done = append(done, c.Since(start))
			mu.Unlock()
		}
	}()
	c.Advance(time.Second)
	if err := c.BlockUntilReceived(ctx); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second) // the loop is still at work on the first tick: the second waits
	if n := c.Unreceived(); n != 1 {
		t.Fatalf("%d unreceived while the loop works, want 1", n)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if err := c.BlockUntilReceived(short); err == nil {
		t.Fatal("BlockUntilReceived returned while a value waits")
	}
	gate <- struct{}{}
	if err := c.BlockUntilReceived(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(done) != 1 || done[0] != 2*time.Second {
		t.Errorf("done with %v once the second tick is taken, want the first (the clock read 2s)", done)
	}
	mu.Unlock()
	tk.Stop()
	close(gate)

	// A value that Stop drops is not waited for.
	tm := c.NewTimer(time.Second)
	c.Advance(time.Second)
	if n := c.Unreceived(); n != 1 {
		t.Fatalf("%d unreceived, want the timer's", n)
	}
	tm.Stop()
	if err := c.BlockUntilReceived(ctx); err != nil {
		t.Error("a stopped timer's value is waited for")
	}
}

// Real passes package time through.
func TestRealClock(t *testing.T) {
	c := clock.Real()
	before := time.Now()
	if now := c.Now(); now.Before(before) {
		t.Errorf("Now %v is before %v", now, before)
	}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	fired := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(fired) })
	<-fired
	tk := c.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
	if c.Since(before) <= 0 {
		t.Error("Since does not grow")
	}
}
