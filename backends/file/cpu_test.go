package file

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCPUPerOp(t *testing.T) {
	be := writeSample(t, 10000)
	ctx := context.Background()
	data := encode(sampleDocument(10000, time.Now()))
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"decode-all", func() { _, _ = decode(data, decodeMode{}) }},
		{"decode-one", func() { _, _ = decode(data, decodeMode{service: "svc0042"}) }},
		{"instances", func() { _, _ = be.Instances(ctx, registry.Query{Name: "svc0042"}) }},
		{"register", func() { _ = be.Register(ctx, registry.Instance{ID: "x-1", Name: "x", Address: "1.2.3.4", Port: 1}) }},
	} {
		const n = 50
		tc.fn()
		c0, w0 := cpuTime(), time.Now()
		for range n {
			tc.fn()
		}
		t.Logf("%-12s cpu %v/op wall %v/op", tc.name, (cpuTime()-c0)/n, time.Since(w0)/n)
	}
}
