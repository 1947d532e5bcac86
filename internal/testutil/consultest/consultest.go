// Package consultest runs real Consul servers for tests: a single server, an n-server cluster,
// an agent with ACLs or one that serves HTTPS. It ties the agents of internal/harness to a
// test: each gets its own temporary directory and is killed by t.Cleanup (and by the kernel
// should the test binary die first), and its output is shown only when the test fails.
//
// The consul binary is built from the version pinned in tools/consul/go.mod by
// scripts/consul-bin.sh (cached under .cache/consul/), or taken from $SDCTL_CONSUL_BIN.
// Without it the tests skip, or fail when SDCTL_TEST_REQUIRE_ALL=1.
package consultest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
)

const (
	// BinaryEnv names a consul binary to use instead of building one.
	BinaryEnv = "SDCTL_CONSUL_BIN"
	// LogLevelEnv sets the agents' log_level (default INFO), e.g. DEBUG or TRACE.
	LogLevelEnv = harness.ConsulLogLevelEnv
	// Datacenter is every agent's datacenter.
	Datacenter = harness.ConsulDatacenter

	leaderTimeout = 60 * time.Second // Leader
	logLines      = 1000             // of an agent's output, shown when its test failed
)

// TLSFiles are the PEM files of an agent that serves HTTPS (see GenerateTLS).
type TLSFiles = harness.ConsulTLSFiles

// Agent is one consul server process (see harness.ConsulAgent), whose restarts fail the test.
type Agent struct {
	*harness.ConsulAgent
}

var slowBuild sync.Once

// Binary returns the path of the consul binary (see harness.ServerBinary). When there is none
// it skips t, or fails it under SDCTL_TEST_REQUIRE_ALL=1.
func Binary(t testing.TB) string {
	t.Helper()
	var progress bytes.Buffer
	start := time.Now()
	path, err := harness.ServerBinary(harness.Consul, &progress)
	if err != nil {
		testutil.SkipUnlessRequired(t, "consultest: no consul binary: "+err.Error())
	}
	if d := time.Since(start); d > 5*time.Second {
		slowBuild.Do(func() { t.Logf("consultest: building consul took %s\n%s", d.Round(time.Second), progress.Bytes()) })
	}
	return path
}

// StartDev starts a single server that bootstraps itself, like `consul agent -dev` but with its
// state on disk (so Restart keeps it) and the HTTP API, DNS, gossip and RPC on free ports. It
// returns when the server is leader and its node is in the catalog, ready to register services.
func StartDev(t testing.TB) *Agent {
	t.Helper()
	return start(t, 0, harness.ConsulOptions{Name: "dev"})[0]
}

// StartCluster starts n servers (-bootstrap-expect=n) that join each other, and returns when
// they have elected a leader, every server lists the n servers as alive members, each is a
// raft voter, and all agree on the leader. Raft runs with raft_multiplier 1 and gossip with
// short intervals, so a lost leader is replaced within a few seconds.
func StartCluster(t testing.TB, n int) []*Agent {
	t.Helper()
	if n < 1 {
		t.Fatalf("consultest: StartCluster(%d): need at least one server", n)
	}
	return start(t, n, harness.ConsulOptions{Name: "server"})
}

// StartLeaderless starts a single server with bootstrap_expect 2 that waits for a second
// server that never comes: it answers the HTTP API, gossip included, but has never had a
// leader, as the servers of a cluster that is starting. It returns once the API answers.
func StartLeaderless(t testing.TB) *Agent {
	t.Helper()
	return start(t, 0, harness.ConsulOptions{Name: "leaderless", Expect: 2})[0]
}

// StartACL starts a single server with ACLs enabled and default policy deny. managementToken
// (also in a.Token) is the initial management token, and the agent token too, so the agent can
// keep its own node in the catalog.
func StartACL(t testing.TB) (a *Agent, managementToken string) {
	t.Helper()
	token, err := harness.NewUUID()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a = start(t, 0, harness.ConsulOptions{Name: "acl", Token: token})[0]
	return a, a.Token
}

// StartTLS starts a single server whose API is HTTPS only, on HTTPSAddr, with certificates from
// GenerateTLS. With verifyIncoming, HTTPS clients must present a certificate signed by the CA.
// a.HTTPClient, a.Env and a.Consul use the CA and the client certificate.
func StartTLS(t testing.TB, verifyIncoming bool) (*Agent, TLSFiles) {
	t.Helper()
	files := GenerateTLS(t)
	a := start(t, 0, harness.ConsulOptions{Name: "tls", TLS: &files, VerifyIncoming: verifyIncoming})[0]
	return a, files
}

// start starts one agent (n = 0) or a cluster of n, each killed by t.Cleanup, which also shows
// its output when the test failed.
func start(t testing.TB, n int, opts harness.ConsulOptions) []*Agent {
	t.Helper()
	opts.Bin = Binary(t)
	opts.Dir = t.TempDir()
	opts.Logf = t.Logf
	var servers []*harness.ConsulAgent
	var err error
	if n == 0 {
		var a *harness.ConsulAgent
		if a, err = harness.StartConsul(context.Background(), opts); err == nil {
			servers = []*harness.ConsulAgent{a}
		}
	} else {
		servers, err = harness.StartConsulCluster(context.Background(), n, opts)
	}
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	agents := make([]*Agent, len(servers))
	for i, s := range servers {
		agents[i] = &Agent{s}
		t.Cleanup(s.HTTPClient().CloseIdleConnections)
		testutil.KillAtEnd(t, logLines, s)
	}
	return agents
}

// Restart stops the agent gracefully when it runs, starts it again with the same ports, data
// and config, and waits until it is ready (see harness.ConsulAgent.Restart); it fails t when
// the agent does not come back.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if err := a.ConsulAgent.Restart(context.Background()); err != nil {
		t.Fatalf("consultest: %v", err)
	}
}

// RestartEmpty crashes the agent (SIGKILL), deletes its data, and starts it again on the same
// ports, waiting as Restart does: an agent that lost everything it held, as a dev agent or a
// client agent without persistent storage does when it restarts.
func (a *Agent) RestartEmpty(t testing.TB) {
	t.Helper()
	if err := a.ConsulAgent.RestartEmpty(context.Background()); err != nil {
		t.Fatalf("consultest: %v", err)
	}
}

// Freeze stops the agent's process with SIGSTOP: it keeps its sockets, so connections are
// accepted by the kernel and never answered, like a hung agent. The process is continued
// (SIGCONT) by the returned function and by t.Cleanup, whichever comes first.
func (a *Agent) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	thaw, err := a.ConsulAgent.Freeze()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	t.Cleanup(thaw)
	return thaw
}

// Consul runs the consul CLI against this agent (with a.Env and no other CONSUL_ variable),
// for example a.Consul(t, "catalog", "services"). It returns stdout; a failure's error
// includes stderr.
func (a *Agent) Consul(t testing.TB, args ...string) (stdout string, err error) {
	t.Helper()
	return a.ConsulAgent.Consul(context.Background(), args...)
}

// Leader waits (up to 60s) until the running agents among agents agree on a leader that is one
// of them, and returns it. Agents that are not running (Kill, Stop) are ignored.
func Leader(t testing.TB, agents ...*Agent) *Agent {
	t.Helper()
	return testutil.Leader(t, leaderTimeout, agents, func(a *Agent) *harness.ConsulAgent { return a.ConsulAgent }, harness.ConsulLeader)
}

// GenerateTLS writes a fresh CA, server certificate and client certificate into a t.TempDir()
// (see harness.GenerateConsulTLS).
func GenerateTLS(t testing.TB) TLSFiles {
	t.Helper()
	files, err := harness.GenerateConsulTLS(t.TempDir())
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return files
}
