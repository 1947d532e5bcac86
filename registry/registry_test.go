package registry_test

import (
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// A TTL is renewed every third of it, so that one failed renewal still leaves time for the next
// before the TTL runs out.
func TestRenewEvery(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		30 * time.Second: 10 * time.Second,
		10 * time.Second: 3333333333 * time.Nanosecond,
		time.Hour:        20 * time.Minute,
		time.Nanosecond:  time.Nanosecond, // never zero: a ticker panics on that
		0:                0,
		-time.Second:     0,
	} {
		got := registry.RenewEvery(ttl)
		if got != want {
			t.Errorf("RenewEvery(%s) = %s, want %s", ttl, got, want)
		}
		// Renewed at 0, failed at got: the next, at 2*got, must come before the TTL runs out.
		if ttl >= 3 && 2*got >= ttl {
			t.Errorf("RenewEvery(%s) = %s: after one failed renewal the next comes too late", ttl, got)
		}
	}
}
