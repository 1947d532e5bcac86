package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
)

// randomPrefix gives each test its own key space on a shared server.
func randomPrefix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "/sdctl-test-" + hex.EncodeToString(b)
}

// open connects a backend with opts (endpoints of members when opts has none, a random prefix
// when it has none) and closes it when the test ends. Its log goes to the test log and, when
// logs is set, to logs.
func open(t testing.TB, opts Options, logs *testutil.SyncBuffer, members ...*etcdtest.Member) *Backend {
	t.Helper()
	if len(opts.Endpoints) == 0 {
		for _, m := range members {
			opts.Endpoints = append(opts.Endpoints, m.ClientURL)
		}
	}
	if opts.Prefix == "" {
		opts.Prefix = randomPrefix(t)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := Open(context.Background(), opts, log)
	if err != nil {
		t.Fatalf("Open(%v): %v", opts.Endpoints, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// ctxFor bounds a test's calls.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
