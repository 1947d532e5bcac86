// Package clock is the watcher's source of time: when now is, and the timers and tickers its
// retries, backoffs, heartbeats and resyncs wait on. Real wraps package time; Fake moves only
// when told to, so tests of those schedules advance it instead of sleeping, and see each timer
// fire at the exact time it was set for.
package clock

import "time"

// Clock tells the time and makes timers and tickers.
type Clock interface {
	Now() time.Time
	// Since is Now().Sub(t).
	Since(t time.Time) time.Duration
	// NewTimer sends the time on its channel once d has passed.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine once d has passed (Fake calls it in Advance).
	AfterFunc(d time.Duration, f func()) Timer
	// NewTicker sends the time on its channel every d; d must be positive. A reader that falls
	// behind misses ticks rather than getting them late.
	NewTicker(d time.Duration) Ticker
}

// Timer is a *time.Timer: after Stop or Reset returns, no value from before it is received.
type Timer interface {
	// C is the channel the time is sent on; nil for a timer made by AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing; false means it had already fired or been stopped.
	Stop() bool
	// Reset makes the timer fire d from now, whether or not it was pending; it reports whether
	// it was.
	Reset(d time.Duration) bool
}

// Ticker is a *time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	// Reset stops the ticker and restarts it with period d.
	Reset(d time.Duration)
}

// Real returns the clock of package time.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Since(t time.Time) time.Duration { return time.Since(t) }
func (realClock) NewTimer(d time.Duration) Timer  { return realTimer{time.NewTimer(d)} }
func (realClock) NewTicker(d time.Duration) Ticker {
	return realTicker{time.NewTicker(d)}
}

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }
