// Package consultest runs real Consul servers for tests: a single server, an n-server cluster,
// an agent with ACLs or one that serves HTTPS. Every agent listens on 127.0.0.1 only, on free
// ports, with its own temporary data dir, and is killed by t.Cleanup (and by the kernel should
// the test binary die first). An agent's output is kept in memory and shown only when the test
// fails.
//
// The consul binary is built from the version pinned in tools/consul/go.mod by
// scripts/consul-bin.sh (cached under .cache/consul/), or taken from $SDCTL_CONSUL_BIN.
// Without it the tests skip, or fail when SDCTL_TEST_REQUIRE_ALL=1.
package consultest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
)

const (
	// BinaryEnv names a consul binary to use instead of building one.
	BinaryEnv = "SDCTL_CONSUL_BIN"
	// LogLevelEnv sets the agents' log_level (default INFO), e.g. DEBUG or TRACE.
	LogLevelEnv = "SDCTL_CONSUL_LOG_LEVEL"
	// Datacenter is every agent's datacenter.
	Datacenter = "dc1"

	readyTimeout  = 60 * time.Second // start or restart until the agent can register services
	leaderTimeout = 60 * time.Second // Leader
	stopTimeout   = 30 * time.Second // graceful leave before SIGKILL
	cliTimeout    = 2 * time.Minute  // one consul CLI command
)

var binary struct {
	sync.Mutex
	done bool
	path string
	err  error
}

// Binary returns the path of the consul binary: $SDCTL_CONSUL_BIN when set, otherwise what
// scripts/consul-bin.sh prints (building it on first use, which takes minutes on a cold Go
// build cache). When there is no binary it skips t, or fails it under SDCTL_TEST_REQUIRE_ALL=1.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		if err := checkExecutable(p); err != nil {
			testutil.SkipUnlessRequired(t, fmt.Sprintf("consultest: %s: %v", BinaryEnv, err))
		}
		return p
	}
	binary.Lock()
	defer binary.Unlock()
	if !binary.done {
		binary.path, binary.err = buildBinary(t)
		binary.done = true
	}
	if binary.err != nil {
		testutil.SkipUnlessRequired(t, "consultest: no consul binary: "+binary.err.Error())
	}
	return binary.path
}

func buildBinary(t testing.TB) (string, error) {
	root := testutil.ModuleRoot(t)
	script := filepath.Join(root, "scripts", "consul-bin.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, stderr.Bytes())
	}
	path := strings.TrimSpace(stdout.String())
	if err := checkExecutable(path); err != nil {
		return "", fmt.Errorf("%s printed %q: %v", script, path, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("consultest: %s took %s\n%s", script, d.Round(time.Second), stderr.Bytes())
	}
	return path, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// Agent is one consul server process. The exported fields describe it; do not change them.
type Agent struct {
	Name        string // node name
	HTTPAddr    string // "127.0.0.1:PORT" of the HTTP API; "" for TLS agents, which use HTTPSAddr
	HTTPSAddr   string // "127.0.0.1:PORT" of the HTTPS API; "" unless started by StartTLS
	DNSAddr     string // "127.0.0.1:PORT" of the DNS interface, UDP and TCP
	ServerAddr  string // raft/RPC "127.0.0.1:PORT", as /v1/status/leader and /v1/status/peers report it
	SerfLANAddr string // "127.0.0.1:PORT" of LAN gossip, what `consul join` takes
	SerfWANAddr string // "127.0.0.1:PORT" of WAN gossip
	DataDir     string // the agent's data_dir; its config file is agent.hcl in there
	ConfigFile  string // DataDir/agent.hcl
	Token       string // ACL token used by the harness and Consul: the management token of StartACL, else ""
	TLS         *TLSFiles

	bin       string
	expect    int      // bootstrap_expect
	peers     []*Agent // the cluster the agent belongs to, itself included
	verifyTLS bool     // require client certificates on HTTPS
	client    *http.Client
	log       logBuffer
	logOffset int // where the current run's output starts in log

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	exitErr error
}

// StartDev starts a single server that bootstraps itself, like `consul agent -dev` but with its
// state on disk (so Restart keeps it) and the HTTP API, DNS, gossip and RPC on free ports. It
// returns when the server is leader and its node is in the catalog, ready to register services.
func StartDev(t testing.TB) *Agent {
	t.Helper()
	a := newAgent(t, "dev", agentOptions{expect: 1})
	startAll(t, []*Agent{a})
	return a
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
	agents := make([]*Agent, n)
	for i := range agents {
		agents[i] = newAgent(t, fmt.Sprintf("server-%d", i+1), agentOptions{expect: n})
	}
	for _, a := range agents {
		a.peers = agents
	}
	startAll(t, agents)
	return agents
}

// StartACL starts a single server with ACLs enabled and default policy deny. managementToken
// (also in a.Token) is the initial management token, and the agent token too, so the agent can
// keep its own node in the catalog.
func StartACL(t testing.TB) (a *Agent, managementToken string) {
	t.Helper()
	a = newAgent(t, "acl", agentOptions{expect: 1, token: newUUID(t)})
	startAll(t, []*Agent{a})
	return a, a.Token
}

// StartTLS starts a single server whose API is HTTPS only, on HTTPSAddr, with certificates from
// GenerateTLS. With verifyIncoming, HTTPS clients must present a certificate signed by the CA.
// a.HTTPClient, a.Env and a.Consul use the CA and the client certificate.
func StartTLS(t testing.TB, verifyIncoming bool) (*Agent, TLSFiles) {
	t.Helper()
	files := GenerateTLS(t)
	a := newAgent(t, "tls", agentOptions{expect: 1, tls: &files, verifyTLS: verifyIncoming})
	startAll(t, []*Agent{a})
	return a, files
}

type agentOptions struct {
	expect    int       // bootstrap_expect
	token     string    // with ACLs: the initial management token
	tls       *TLSFiles // HTTPS only, with these certificates
	verifyTLS bool      // HTTPS clients must present a certificate
}

// newAgent prepares an agent (ports, data dir, cleanup) without starting it.
func newAgent(t testing.TB, name string, opts agentOptions) *Agent {
	t.Helper()
	a := &Agent{
		Name:      name,
		DataDir:   t.TempDir(),
		Token:     opts.token,
		TLS:       opts.tls,
		bin:       Binary(t),
		expect:    opts.expect,
		verifyTLS: opts.verifyTLS,
	}
	a.ConfigFile = filepath.Join(a.DataDir, "agent.hcl")
	a.peers = []*Agent{a}
	var err error
	if a.client, err = newHTTPClient(a.TLS, true); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a.pickPorts(t)
	t.Cleanup(func() {
		a.Kill()
		a.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("consultest: output of consul agent %s (data dir %s):\n%s", a.Name, a.DataDir, a.log.String())
		}
	})
	return a
}

// startAll writes the agents' config files, starts them and waits until they are ready. When
// a port picked for them was taken in the meantime it retries once on new ports.
func startAll(t testing.TB, agents []*Agent) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		for _, a := range agents {
			if err := a.writeConfig(); err != nil {
				t.Fatalf("consultest: %v", err)
			}
		}
		for _, a := range agents {
			if err := a.start(); err != nil {
				t.Fatalf("consultest: start consul agent %s: %v", a.Name, err)
			}
		}
		err := waitReady(agents)
		if err == nil {
			return
		}
		if attempt == 1 && anyAddrInUse(agents) {
			t.Logf("consultest: a port was taken before consul could bind it; retrying on new ports: %v", err)
			for _, a := range agents {
				a.Kill()
			}
			for _, a := range agents {
				a.log.mark("retrying on new ports")
				if err := a.resetDataDir(); err != nil {
					t.Fatalf("consultest: %v", err)
				}
				a.pickPorts(t)
			}
			continue
		}
		t.Fatalf("consultest: consul did not become ready: %v", err)
	}
}

func (a *Agent) pickPorts(t testing.TB) {
	t.Helper()
	ports, err := freePorts(5)
	if err != nil {
		t.Fatalf("consultest: free ports: %v", err)
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	a.HTTPAddr, a.HTTPSAddr = "", ""
	if a.TLS != nil {
		a.HTTPSAddr = addr(ports[0])
	} else {
		a.HTTPAddr = addr(ports[0])
	}
	a.DNSAddr = addr(ports[1])
	a.SerfLANAddr = addr(ports[2])
	a.SerfWANAddr = addr(ports[3])
	a.ServerAddr = addr(ports[4])
}

func (a *Agent) resetDataDir() error {
	entries, err := os.ReadDir(a.DataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(a.DataDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// config is the agent's configuration file (HCL).
func (a *Agent) config() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	port := func(addr string) int {
		if addr == "" {
			return -1
		}
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}

	line("# Written by consultest for a test; the test's t.Cleanup kills the agent.")
	line("node_name        = %q", a.Name)
	line("datacenter       = %q", Datacenter)
	line("data_dir         = %q", a.DataDir)
	line("log_level        = %q", logLevel())
	line("server           = true")
	line("bootstrap_expect = %d", a.expect)
	line(`bind_addr        = "127.0.0.1"`)
	line(`advertise_addr   = "127.0.0.1"`)
	line(`client_addr      = "127.0.0.1"`)
	var join []string
	for _, p := range a.peers {
		if p != a {
			join = append(join, strconv.Quote(p.SerfLANAddr))
		}
	}
	if len(join) > 0 {
		line("retry_join       = [%s]", strings.Join(join, ", "))
		line(`retry_interval   = "250ms"`)
	}
	line("disable_update_check    = true")
	line("leave_on_terminate      = false")
	line("skip_leave_on_interrupt = false # SIGINT leaves the cluster gracefully")
	line("ui_config { enabled = false }")
	line("connect { enabled = false }")
	line("peering { enabled = false }")
	line("performance {")
	line("  raft_multiplier  = 1")
	line(`  leave_drain_time = "500ms"`)
	line("}")
	for _, pool := range []string{"gossip_lan", "gossip_wan"} {
		line("%s {", pool)
		line(`  gossip_interval = "100ms"`)
		line(`  probe_interval  = "500ms"`)
		line(`  probe_timeout   = "250ms"`)
		line("  suspicion_mult  = 3")
		line("}")
	}
	line("autopilot {")
	line(`  server_stabilization_time = "1s"`)
	line("}")
	line("ports {")
	line("  http     = %d", port(a.HTTPAddr))
	line("  https    = %d", port(a.HTTPSAddr))
	line("  dns      = %d", port(a.DNSAddr))
	line("  serf_lan = %d", port(a.SerfLANAddr))
	line("  serf_wan = %d", port(a.SerfWANAddr))
	line("  server   = %d", port(a.ServerAddr))
	line("  grpc     = -1")
	line("  grpc_tls = -1")
	line("}")
	if a.Token != "" {
		line("acl {")
		line("  enabled                  = true")
		line(`  default_policy           = "deny"`)
		line(`  down_policy              = "extend-cache"`)
		line("  enable_token_persistence = true")
		line("  tokens {")
		line("    initial_management = %q", a.Token)
		line("    agent              = %q", a.Token)
		line("  }")
		line("}")
	}
	if a.TLS != nil {
		line("tls {")
		line("  defaults {")
		line("    ca_file         = %q", a.TLS.CAFile)
		line("    cert_file       = %q", a.TLS.CertFile)
		line("    key_file        = %q", a.TLS.KeyFile)
		line("    verify_outgoing = true")
		line("  }")
		line("  internal_rpc {")
		line("    verify_server_hostname = true")
		line("  }")
		line("  https {")
		line("    verify_incoming = %t", a.verifyTLS)
		line("  }")
		line("}")
	}
	return b.String()
}

func (a *Agent) writeConfig() error {
	return os.WriteFile(a.ConfigFile, []byte(a.config()), 0o600)
}

func logLevel() string {
	if l := os.Getenv(LogLevelEnv); l != "" {
		return l
	}
	return "INFO"
}

// start launches the agent process from its config file; it does not wait for readiness.
func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil && !isClosed(a.done) {
		return errors.New("already running")
	}
	cmd := exec.Command(a.bin, "agent", "-config-file="+a.ConfigFile)
	cmd.Dir = a.DataDir
	cmd.Env = cleanEnv()
	cmd.Stdout = &a.log
	cmd.Stderr = &a.log
	a.logOffset = a.log.mark("starting %s agent -config-file=%s", a.bin, a.ConfigFile)
	if err := startProcess(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	a.cmd, a.done, a.exitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.exitErr = err
		a.mu.Unlock()
		a.log.mark("consul agent %s exited: %v", a.Name, cmd.ProcessState)
		close(done)
	}()
	return nil
}

// exited reports why the current process ended, or nil while it runs.
func (a *Agent) exited() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return errors.New("not started")
	}
	if !isClosed(a.done) {
		return nil
	}
	if a.exitErr != nil {
		return fmt.Errorf("exited: %w", a.exitErr)
	}
	return errors.New("exited with status 0")
}

// Running reports whether the agent's process is running.
func (a *Agent) Running() bool {
	return a.exited() == nil
}

func (a *Agent) addrInUse() bool {
	a.mu.Lock()
	off := a.logOffset
	a.mu.Unlock()
	return strings.Contains(a.log.since(off), "address already in use")
}

func anyAddrInUse(agents []*Agent) bool {
	for _, a := range agents {
		if a.addrInUse() {
			return true
		}
	}
	return false
}

// signal sends sig to a running process and returns the channel closed on its exit, or nil
// when nothing runs.
func (a *Agent) signal(sig os.Signal) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || isClosed(a.done) {
		return nil
	}
	_ = a.cmd.Process.Signal(sig)
	return a.done
}

// Kill sends SIGKILL and waits for the process to end: a crash, for leader-loss tests. The
// agent does not leave the cluster. It does nothing when the agent is not running.
func (a *Agent) Kill() {
	if done := a.signal(os.Kill); done != nil {
		<-done
	}
}

// Stop shuts the agent down gracefully and waits for it to exit, killing it after 30s. A
// member of a cluster gets SIGINT, so it leaves the cluster first (a leader hands leadership
// over); a single server gets SIGTERM and shuts down without leaving, since leaving a cluster
// of one only costs seconds of gossip timeouts.
func (a *Agent) Stop() {
	sig := os.Interrupt
	if len(a.peers) == 1 {
		sig = syscall.SIGTERM
	}
	done := a.signal(sig)
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		a.log.mark("still running %s after %v; killing it", stopTimeout, sig)
		a.Kill()
	}
}

// Restart stops the agent gracefully when it runs (see Stop; use Kill first for a crash), then
// starts it again with the same ports, data dir and config, and waits until it knows a leader
// and is ready to register services. A cluster member must also be back as a raft voter (a
// second or so after it rejoins) and see every running member alive.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	for attempt := 1; ; attempt++ {
		if err := a.start(); err != nil {
			t.Fatalf("consultest: restart consul agent %s: %v", a.Name, err)
		}
		err := waitReady([]*Agent{a})
		if err == nil {
			return
		}
		if attempt == 1 && a.addrInUse() {
			// Our own ports: something grabbed one while the agent was down. Wait and retry.
			a.Kill()
			time.Sleep(time.Second)
			continue
		}
		t.Fatalf("consultest: restart consul agent %s: %v", a.Name, err)
	}
}

// RestartEmpty crashes the agent (SIGKILL), deletes its data dir, and starts it again on the
// same ports, waiting as Restart does: an agent that lost everything it held, as a dev agent
// or a client agent without persistent storage does when it restarts.
func (a *Agent) RestartEmpty(t testing.TB) {
	t.Helper()
	a.Kill()
	if err := a.resetDataDir(); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	if err := a.writeConfig(); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a.Restart(t)
}

// URL is the base URL of the agent's API: "http://HTTPAddr" or "https://HTTPSAddr".
func (a *Agent) URL() string {
	if a.HTTPSAddr != "" {
		return "https://" + a.HTTPSAddr
	}
	return "http://" + a.HTTPAddr
}

// HTTPClient is a client for the agent's API; for TLS agents it trusts the CA and presents the
// client certificate. It sends no token by itself (see Request).
func (a *Agent) HTTPClient() *http.Client {
	return a.client
}

// Request sends one API request, path like "/v1/catalog/services", with a.Token as
// X-Consul-Token when there is one. The caller closes the response body.
func (a *Agent) Request(method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, a.URL()+path, body)
	if err != nil {
		return nil, err
	}
	if a.Token != "" {
		req.Header.Set("X-Consul-Token", a.Token)
	}
	return a.client.Do(req)
}

// getJSON GETs path and decodes a 200 response into out.
func (a *Agent) getJSON(path string, out any) error {
	resp, err := a.Request(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %v", path, err)
	}
	return nil
}

// Env is the environment that points Consul's clients at this agent, sdctl's consul backend
// included: CONSUL_HTTP_ADDR, plus CONSUL_HTTP_TOKEN with ACLs, plus CONSUL_HTTP_SSL,
// CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY with TLS.
func (a *Agent) Env() []string {
	var env []string
	if a.TLS != nil {
		env = append(env,
			"CONSUL_HTTP_ADDR="+a.URL(),
			"CONSUL_HTTP_SSL=true",
			"CONSUL_CACERT="+a.TLS.CAFile,
			"CONSUL_CLIENT_CERT="+a.TLS.ClientCertFile,
			"CONSUL_CLIENT_KEY="+a.TLS.ClientKeyFile,
		)
	} else {
		env = append(env, "CONSUL_HTTP_ADDR="+a.HTTPAddr)
	}
	if a.Token != "" {
		env = append(env, "CONSUL_HTTP_TOKEN="+a.Token)
	}
	return env
}

// Consul runs the consul CLI against this agent (with a.Env and no other CONSUL_ variable),
// for example a.Consul(t, "catalog", "services"). It returns stdout; a failure's error
// includes stderr.
func (a *Agent) Consul(t testing.TB, args ...string) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = append(cleanEnv(), a.Env()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("consul %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(errOut.Bytes()))
	}
	return out.String(), nil
}

// Log is everything the agent printed so far, over all its runs.
func (a *Agent) Log() string {
	return a.log.String()
}

// Leader waits (up to 60s) until the running agents among agents agree on a leader that is one
// of them, and returns it. Agents that are not running (Kill, Stop) are ignored.
func Leader(t testing.TB, agents ...*Agent) *Agent {
	t.Helper()
	deadline := time.Now().Add(leaderTimeout)
	for {
		l, err := leaderOf(agents)
		if err == nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("consultest: no leader after %s: %v", leaderTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaderOf(agents []*Agent) (*Agent, error) {
	var leader string
	running := 0
	for _, a := range agents {
		if !a.Running() {
			continue
		}
		running++
		var addr string
		if err := a.getJSON("/v1/status/leader", &addr); err != nil {
			return nil, fmt.Errorf("%s: %v", a.Name, err)
		}
		switch {
		case addr == "":
			return nil, fmt.Errorf("%s knows no leader", a.Name)
		case leader == "":
			leader = addr
		case leader != addr:
			return nil, fmt.Errorf("agents disagree on the leader: %s and %s", leader, addr)
		}
	}
	if running == 0 {
		return nil, errors.New("none of the agents is running")
	}
	for _, a := range agents {
		if a.ServerAddr == leader && a.Running() {
			return a, nil
		}
	}
	return nil, fmt.Errorf("the leader %s is none of the running agents", leader)
}

// waitReady polls the agents until each is ready (see ready), and returns early with an error
// when one of them exits.
func waitReady(agents []*Agent) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := checkReady(agents)
		if err == nil {
			return nil
		}
		for _, a := range agents {
			if exit := a.exited(); exit != nil {
				return fmt.Errorf("consul agent %s %v", a.Name, exit)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v", readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkReady(agents []*Agent) error {
	for _, a := range agents {
		if err := a.ready(); err != nil {
			return fmt.Errorf("%s: %v", a.Name, err)
		}
	}
	return nil
}

// ready checks that the agent knows a leader, answers /v1/agent/self and has its own node in
// the catalog, so services can be registered. A cluster member must also list every running
// member of its cluster as alive, be a raft voter, and agree with them on the leader.
func (a *Agent) ready() error {
	if err := a.exited(); err != nil {
		return err
	}
	var leader string
	if err := a.getJSON("/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	var self map[string]any
	if err := a.getJSON("/v1/agent/self", &self); err != nil {
		return err
	}
	if len(a.peers) > 1 {
		var members []struct {
			Name   string
			Status int
		}
		if err := a.getJSON("/v1/agent/members", &members); err != nil {
			return err
		}
		alive := map[string]bool{}
		for _, m := range members {
			alive[m.Name] = m.Status == 1 // serf.StatusAlive
		}
		for _, p := range a.peers {
			if p.Running() && !alive[p.Name] {
				return fmt.Errorf("member %s not alive yet", p.Name)
			}
		}
		var raft struct {
			Servers []struct {
				Address string
				Voter   bool
			}
		}
		if err := a.getJSON("/v1/operator/raft/configuration", &raft); err != nil {
			return err
		}
		voter := false
		for _, srv := range raft.Servers {
			voter = voter || srv.Address == a.ServerAddr && srv.Voter
		}
		if !voter {
			return errors.New("not a raft voter yet")
		}
		if _, err := leaderOf(a.peers); err != nil {
			return err
		}
	}
	var node struct{ Node *struct{ Node string } }
	if err := a.getJSON("/v1/catalog/node/"+a.Name, &node); err != nil {
		return err
	}
	if node.Node == nil {
		return errors.New("own node not in the catalog yet")
	}
	return nil
}

func newHTTPClient(files *TLSFiles, withCert bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only; ignore HTTP_PROXY
	if files != nil {
		cfg, err := files.clientConfig(withCert)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// cleanEnv is the test's environment without CONSUL_ variables, which would point the agent or
// the CLI somewhere else.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			env = append(env, kv)
		}
	}
	return env
}

var ports struct {
	sync.Mutex
	used map[int]bool
}

// freePorts returns n distinct ports that are free on 127.0.0.1 for both TCP and UDP right now
// (Consul's DNS and gossip listen on both), never handing out the same port twice in a process.
// Another process may still take one before consul binds it; startAll retries for that.
func freePorts(n int) ([]int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 100*n {
			return nil, errors.New("no free ports on 127.0.0.1")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			_ = pc.Close()
		}
		l.Close()
		if err != nil || ports.used[port] {
			continue
		}
		ports.used[port] = true
		out = append(out, port)
	}
	return out, nil
}

func newUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// logBuffer collects an agent's output across its runs; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// since returns the output from offset on.
func (l *logBuffer) since(offset int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > l.b.Len() {
		return ""
	}
	return string(l.b.Bytes()[offset:])
}

// mark writes a harness line into the log and returns the offset where it starts.
func (l *logBuffer) mark(format string, args ...any) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	off := l.b.Len()
	fmt.Fprintf(&l.b, "=== consultest %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	return off
}
