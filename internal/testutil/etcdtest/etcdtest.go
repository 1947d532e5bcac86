// Package etcdtest starts real etcd servers for tests: a single member, a cluster, a member with
// authentication, a member serving TLS. It ties the members of internal/harness to a test:
// every member listens on loopback ports chosen for the test, keeps its data in the test's
// temporary directory, and is killed when the test ends, whether it passed or not. Server logs
// are shown only when the test fails.
//
// The etcd binary is the one pinned in tools/etcd, built once and cached by
// scripts/etcd-bin.sh, or the one named by $SDCTL_ETCD_BIN.
package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
)

// BinEnv names an etcd server binary to use instead of building the pinned one.
const BinEnv = "SDCTL_ETCD_BIN"

// Names set up by StartAuth.
const (
	// RootUser is etcd's administrator; it holds the root role.
	RootUser = harness.EtcdRootUser
	// ServiceRole may read and write keys under ServicePrefix and nothing else.
	ServiceRole = harness.EtcdServiceRole
	// ServiceUser holds ServiceRole only.
	ServiceUser = harness.EtcdServiceUser
	// ServicePrefix is the key prefix ServiceRole is limited to: sdctl's default.
	ServicePrefix = harness.EtcdServicePrefix
)

// startTimeout bounds the waits for a member: a restart, a leader.
const startTimeout = 60 * time.Second

type (
	// Auth describes the users of a member started by StartAuth.
	Auth = harness.EtcdAuth
	// TLSFiles are PEM files a client uses to talk to a member started by StartTLS.
	TLSFiles = harness.EtcdTLSFiles
)

// Member is one etcd server process (see harness.EtcdMember), whose restarts fail the test.
type Member struct {
	*harness.EtcdMember
}

// Binary returns the path of the etcd server binary (see harness.ServerBinary). When there is
// none it skips t, or fails it when testutil.RequireAllEnv is set.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := harness.ServerBinary(harness.Etcd, nil)
	if err != nil {
		testutil.SkipUnlessRequired(t, "no etcd server binary: "+err.Error())
	}
	return path
}

// StartSingle starts a one-member cluster and waits until it serves. Like every Start function
// it skips the test with -short.
func StartSingle(t testing.TB) *Member {
	t.Helper()
	return start(t, 1, harness.EtcdOptions{})[0]
}

// StartCluster starts an n-member cluster from a static initial-cluster list and waits until
// every member serves and the cluster has a leader.
func StartCluster(t testing.TB, n int) []*Member {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: StartCluster(%d)", n)
	}
	return start(t, n, harness.EtcdOptions{})
}

// StartAuth starts a single member with authentication enabled: a root user, a role granted
// read and write on the ServicePrefix keys ("/services" and everything under it) only, and a
// ServiceUser holding that role. It returns the member, whose Auth field also names the
// limited user and its password, and the root password.
func StartAuth(t testing.TB) (*Member, string) {
	t.Helper()
	m := StartSingle(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := harness.EnableEtcdAuth(ctx, m.EtcdMember)
	if err != nil {
		t.Fatalf("etcdtest: StartAuth: %v", err)
	}
	return m, a.RootPassword
}

// StartTLS starts a single member serving clients over TLS only, with client certificates
// required (--client-cert-auth). The certificates are generated for the test: a CA, a server
// certificate for 127.0.0.1 and localhost, and the client certificate returned.
func StartTLS(t testing.TB) (*Member, TLSFiles) {
	t.Helper()
	m := start(t, 1, harness.EtcdOptions{TLS: true})[0]
	return m, *m.TLS
}

// NewCA creates a CA for a test (see harness.NewCA).
func NewCA(dir, commonName string) (*harness.CA, error) { return harness.NewCA(dir, commonName) }

func start(t testing.TB, n int, opts harness.EtcdOptions) []*Member {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd servers; skipped with -short")
	}
	opts.Bin = Binary(t)
	opts.Dir = t.TempDir()
	opts.Logf = t.Logf
	servers, err := harness.StartEtcd(context.Background(), n, opts)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	members := make([]*Member, len(servers))
	for i, s := range servers {
		members[i] = &Member{s}
		testutil.KillAtEnd(t, 60, s)
	}
	return members
}

// Restart starts a stopped or killed member again on the same ports and data directory and
// waits until it answers (it may still be catching up with the cluster's leader).
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if err := m.EtcdMember.Restart(context.Background()); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
}

// Leader waits until one of the running members among members reports itself the leader and
// returns it. It fails the test after a minute.
func Leader(t testing.TB, members ...*Member) *Member {
	t.Helper()
	return testutil.Leader(t, startTimeout, members, func(m *Member) *harness.EtcdMember { return m.EtcdMember }, harness.EtcdLeader)
}

// Client returns an etcd client for members, closed when the test ends. On members with
// authentication it logs in as root; on members serving TLS it presents the client
// certificate. Tests use it to arrange and inspect data behind the code under test.
func Client(t testing.TB, members ...*Member) *clientv3.Client {
	t.Helper()
	cfg, err := harness.EtcdClientConfig(servers(members)...)
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

func servers(members []*Member) []*harness.EtcdMember {
	out := make([]*harness.EtcdMember, len(members))
	for i, m := range members {
		out[i] = m.EtcdMember
	}
	return out
}
