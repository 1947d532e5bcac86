package testutil

import (
	"context"
	"testing"
	"time"
)

// Leader waits up to timeout for find to name the leader among the servers that server gives
// for each of wrapped (a test package's handles on harness servers), and returns the handle of
// that server. It fails t when find fails or names a server that none of wrapped holds.
func Leader[W any, S comparable](t testing.TB, timeout time.Duration, wrapped []W, server func(W) S, find func(context.Context, ...S) (S, error)) W {
	t.Helper()
	servers := make([]S, len(wrapped))
	for i, w := range wrapped {
		servers[i] = server(w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l, err := find(ctx, servers...)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range servers {
		if s == l {
			return wrapped[i]
		}
	}
	t.Fatalf("the leader is none of the %d servers given", len(servers))
	var none W
	return none
}
