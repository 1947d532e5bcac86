package server

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestMemoryLimiterFollowsTheLiveHeap checks that the soft limit rises above a live heap that
// outgrows the floor, so that the collector never runs back to back, and comes back to the
// floor once the heap is small again.
func TestMemoryLimiterFollowsTheLiveHeap(t *testing.T) {
	const floor = 12 << 20
	before := debug.SetMemoryLimit(-1)
	stop := startMemoryLimiter(floor)
	t.Cleanup(func() {
		stop()
		debug.SetMemoryLimit(before)
	})
	limitAfterGC := func(ok func(int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // the limit is set by a cleanup, after the cycle
			limit := debug.SetMemoryLimit(-1)
			if ok(limit) || time.Now().After(deadline) {
				return limit
			}
		}
	}
	if got := limitAfterGC(func(l int64) bool { return l == floor }); got != floor {
		t.Fatalf("limit %d MiB with a small heap, want the floor, %d MiB", got>>20, floor>>20)
	}

	const live = 64 << 20
	func() {
		keep := make([][]byte, 64)
		for i := range keep {
			keep[i] = make([]byte, live/len(keep))
			keep[i][0] = 1
		}
		if got := limitAfterGC(func(l int64) bool { return l >= live*3/2 }); got < live*3/2 {
			t.Errorf("limit %d MiB with %d MiB live, want at least %d MiB", got>>20, live>>20, live*3/2>>20)
		}
		runtime.KeepAlive(keep)
	}()

	if got := limitAfterGC(func(l int64) bool { return l == floor }); got != floor {
		t.Errorf("limit %d MiB once the heap is small again, want the floor, %d MiB", got>>20, floor>>20)
	}
}
