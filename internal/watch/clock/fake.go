package clock

import (
	"context"
	"sync"
	"time"
)

// Fake is a Clock that stands still until Advance moves it. Advance fires every timer and
// ticker that falls due on the way, in the order of their times (those due at the same time
// in the order they were set), each with the clock reading its own time; a function of
// AfterFunc runs inside Advance, before the next one is due, so its effects are there when
// Advance returns. A value sent on a timer's or ticker's channel is received by whoever waits
// on it in their own time: BlockUntil tells a test when that code has set its next timer, and
// BlockUntilReceived when it has taken every value sent.
//
// A Fake is safe for concurrent use. The functions AfterFunc runs may use the clock, but not
// call Advance.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	pending map[*waiter]bool
	changed chan struct{}    // closed, and replaced, whenever pending changes
	sent    map[*waiter]bool // those Advance sent a value to, perhaps not received yet
}

// NewFake returns a Fake that reads now until it is advanced.
func NewFake(now time.Time) *Fake {
	return &Fake{now: now, pending: map[*waiter]bool{}, changed: make(chan struct{}), sent: map[*waiter]bool{}}
}

// waiter is a timer or a ticker of a Fake.
type waiter struct {
	clk    *Fake
	at     time.Time
	seq    uint64        // when it was set, among those due at the same time
	period time.Duration // a ticker's
	c      chan time.Time
	fn     func()
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *Fake) NewTimer(d time.Duration) Timer {
	w := &waiter{clk: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(w, d)
	return (*fakeTimer)(w)
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	w := &waiter{clk: f, fn: fn}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(w, d)
	return (*fakeTimer)(w)
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &waiter{clk: f, period: d, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(w, d)
	return (*fakeTicker)(w)
}

// Advance moves the clock d forward, firing what falls due on the way.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(max(d, 0))
	for {
		w := f.next(end)
		if w == nil {
			break
		}
		if w.at.After(f.now) {
			f.now = w.at
		}
		now := f.now
		if w.period > 0 {
			w.at = w.at.Add(w.period)
			f.seq++
			w.seq = f.seq
		} else {
			f.remove(w)
		}
		if w.fn != nil {
			f.mu.Unlock()
			w.fn()
			f.mu.Lock()
			continue
		}
		select {
		case w.c <- now:
			f.sent[w] = true
		default: // the last value is still unread: like a ticker, drop this one
		}
	}
	if end.After(f.now) {
		f.now = end
	}
}

// Waiters is the number of timers and tickers that are set and have not fired or stopped.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// BlockUntil waits until at least n timers and tickers are set (see Waiters).
func (f *Fake) BlockUntil(n int) {
	_ = f.BlockUntilContext(context.Background(), n) // cannot fail without a deadline
}

// BlockUntilContext is BlockUntil that gives up with ctx's error when ctx ends first.
func (f *Fake) BlockUntilContext(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		enough, changed := len(f.pending) >= n, f.changed
		f.mu.Unlock()
		if enough {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Unreceived is the number of timers and tickers whose channel holds a value Advance sent that
// nobody has received yet (Stop and Reset drop it).
func (f *Fake) Unreceived() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.sent {
		if len(w.c) == 0 {
			delete(f.sent, w)
		}
	}
	return len(f.sent)
}

// BlockUntilReceived waits until every value Advance sent on a timer's or ticker's channel has
// been received (Unreceived is zero), or gives up with ctx's error. Receiving a value is not
// being done with it: code that works on each tick of a ticker is done with one once it has
// received the next, so a test that needs that advances the clock by one more period and waits
// again.
func (f *Fake) BlockUntilReceived(ctx context.Context) error {
	// A receive on a channel cannot be observed, only its outcome: look every millisecond.
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for f.Unreceived() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// next returns the pending waiter due first, at end at the latest, or nil.
func (f *Fake) next(end time.Time) *waiter {
	var first *waiter
	for w := range f.pending {
		if w.at.After(end) {
			continue
		}
		if first == nil || w.at.Before(first.at) || w.at.Equal(first.at) && w.seq < first.seq {
			first = w
		}
	}
	return first
}

// set (re)starts w to fire d from now. f.mu is held.
func (f *Fake) set(w *waiter, d time.Duration) {
	w.at = f.now.Add(d)
	f.seq++
	w.seq = f.seq
	if !f.pending[w] {
		f.pending[w] = true
		f.notify()
	}
}

// remove takes w off the pending set and reports whether it was there. f.mu is held.
func (f *Fake) remove(w *waiter) bool {
	if !f.pending[w] {
		return false
	}
	delete(f.pending, w)
	f.notify()
	return true
}

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// drain drops a value sent on w's channel and not yet received. w.clk.mu is held.
func (w *waiter) drain() {
	select {
	case <-w.c:
	default:
	}
}

type fakeTimer waiter

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	w := (*waiter)(t)
	w.clk.mu.Lock()
	defer w.clk.mu.Unlock()
	w.drain()
	return w.clk.remove(w)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	w := (*waiter)(t)
	w.clk.mu.Lock()
	defer w.clk.mu.Unlock()
	w.drain()
	was := w.clk.pending[w]
	w.clk.set(w, d)
	return was
}

type fakeTicker waiter

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	w := (*waiter)(t)
	w.clk.mu.Lock()
	defer w.clk.mu.Unlock()
	w.drain()
	w.clk.remove(w)
}

func (t *fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	w := (*waiter)(t)
	w.clk.mu.Lock()
	defer w.clk.mu.Unlock()
	w.drain()
	w.period = d
	w.clk.set(w, d)
}
