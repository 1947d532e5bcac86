package server

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// memoryFloor is the soft memory limit LimitMemory starts from: what the Go runtime may keep
// (heap, goroutine stacks, its own metadata) before it collects and returns freed pages to the
// system, while the live heap is small.
const memoryFloor = 12 << 20

// LimitMemory gives a long-running process a soft memory limit (runtime/debug.SetMemoryLimit)
// that follows its live heap: after every garbage collection it is set to the larger of 12 MiB
// and what the runtime keeps besides the heap (goroutine stacks, its own metadata) plus one and
// a half times the live heap. `sdctl watch` calls it at start, and a backend process when it
// starts serving a Watch stream, which keeps it running (the watcher's backend, `resolve
// --watch`); the backend process of a one-shot command is left as it is.
//
// Without it, a process whose live heap is a few MiB but that decodes large answers now and
// then (every instance of a registry after a change, hundreds of container inspections during
// a reconcile) lets its heap grow to twice the largest live heap it saw, at least 4 MiB, and
// returns freed pages to the system only slowly: its resident memory stays near the sum of its
// largest bursts. Under the limit it collects when the heap has grown by half its live part
// rather than doubled, and returns freed pages sooner. Collections are then up to twice as
// frequent, each as cheap as before (a few milliseconds for a few MiB of live heap); as the
// live heap grows the limit grows with it, so the collector never runs back to back.
//
// It does nothing when GOMEMLIMIT or GOGC is set: the runtime then follows them as documented
// in the runtime package.
func LimitMemory() {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		return
	}
	limitOnce.Do(func() { startMemoryLimiter(memoryFloor) })
}

var limitOnce sync.Once

// memoryMetrics are read after each collection: the live heap, the classes that add up to the
// memory the runtime keeps for the heap, and the total it has mapped.
var memoryMetrics = [...]string{
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/total:bytes",
}

type memoryLimiter struct {
	floor   int64
	samples [len(memoryMetrics)]metrics.Sample
	stopped atomic.Bool
}

// startMemoryLimiter sets the limit to floor and adjusts it after every collection until stop
// is called; stop leaves the limit where it is.
func startMemoryLimiter(floor int64) (stop func()) {
	l := &memoryLimiter{floor: floor}
	for i, name := range memoryMetrics {
		l.samples[i].Name = name
	}
	debug.SetMemoryLimit(floor)
	l.arm()
	return func() { l.stopped.Store(true) }
}

// gcMark is allocated for each cycle: its cleanup runs once a collection has found it
// unreachable, that is, once after every collection. It holds a pointer so that it is not
// placed in a block shared with other small objects, whose cleanups may never run.
type gcMark struct{ _ *byte }

func (l *memoryLimiter) arm() {
	runtime.AddCleanup(new(gcMark), func(l *memoryLimiter) {
		if !l.stopped.Load() {
			l.adjust()
			l.arm()
		}
	}, l)
}

func (l *memoryLimiter) adjust() {
	metrics.Read(l.samples[:])
	var v [len(memoryMetrics)]uint64
	for i, s := range l.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return // a metric this runtime does not have: the limit stays as it is
		}
		v[i] = s.Value.Uint64()
	}
	live, heap, total := v[0], v[1]+v[2]+v[3]+v[4], v[5]
	besides := total - min(heap, total) // goroutine stacks, the runtime's own metadata
	debug.SetMemoryLimit(max(l.floor, int64(besides+live*3/2)))
}
