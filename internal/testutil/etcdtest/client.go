package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client returns an etcd client for members, closed when the test ends. On members with
// authentication it logs in as root; on members serving TLS it presents the client
// certificate. Tests use it to arrange and inspect data behind the code under test.
func Client(t testing.TB, members ...*Member) *clientv3.Client {
	t.Helper()
	if len(members) == 0 {
		t.Fatal("etcdtest: Client without members")
	}
	cfg, err := clientConfig(members...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	cfg.DialTimeout = 10 * time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: client for %v: %v", cfg.Endpoints, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// clientConfig is a client configuration for members, as root where auth is on.
func clientConfig(members ...*Member) (clientv3.Config, error) {
	cfg := clientv3.Config{Logger: zap.NewNop()}
	for _, m := range members {
		cfg.Endpoints = append(cfg.Endpoints, m.ClientURL)
	}
	m := members[0]
	if m.Auth != nil {
		cfg.Username, cfg.Password = RootUser, m.Auth.RootPassword
	}
	if m.TLS != nil {
		tc, err := m.TLS.Config()
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// waitServing polls m until it answers a status request (and, with needLeader, knows a leader),
// failing early when the process exits.
func waitServing(ctx context.Context, m *Member, needLeader bool) error {
	cfg, err := clientConfig(m)
	if err != nil {
		return err
	}
	var last error = errNotReady
	for {
		if err := m.exited(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("member %s: %w (last: %v)", m.Name, ctx.Err(), last)
		}
		st, err := status(ctx, cfg, m.ClientURL)
		switch {
		case err != nil:
			last = err
		case needLeader && st.Leader == 0:
			last = errNotReady
		default:
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status asks one endpoint for its status, giving up after a second so a dead member does not
// stall the caller.
func status(ctx context.Context, cfg clientv3.Config, endpoint string) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cfg.Endpoints = []string{endpoint}
	cfg.DialTimeout = time.Second
	cfg.Context = ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cli.Close() }()
	return cli.Status(ctx, endpoint)
}

// Leader waits until one of the running members among members reports itself the leader and
// returns it. It fails the test after startTimeout.
func Leader(t testing.TB, members ...*Member) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		for _, m := range members {
			if !m.Running() {
				continue
			}
			cfg, err := clientConfig(m)
			if err != nil {
				t.Fatalf("etcdtest: %v", err)
			}
			st, err := status(ctx, cfg, m.ClientURL)
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcdtest: no leader among %d member(s) within %v (last error: %v)", len(members), startTimeout, last)
	return nil
}
