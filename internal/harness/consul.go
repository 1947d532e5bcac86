package harness

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"syscall"
	"time"
)

const (
	// ConsulLogLevelEnv sets the agents' log_level when ConsulOptions.LogLevel is empty
	// (default INFO), e.g. DEBUG or TRACE.
	ConsulLogLevelEnv = "SDCTL_CONSUL_LOG_LEVEL"
	// ConsulDatacenter is every agent's datacenter.
	ConsulDatacenter = "dc1"

	consulReadyTimeout = 60 * time.Second // start or restart until the agent can register services
	consulStopTimeout  = 30 * time.Second // graceful leave before SIGKILL
	consulCLITimeout   = 2 * time.Minute  // one consul CLI command
	startAttempts      = 3                // starts that lost a port to someone else are retried
)

// ConsulOptions describe the agents StartConsul and StartConsulCluster start.
type ConsulOptions struct {
	// Bin is the consul binary (see ServerBinary).
	Bin string
	// Dir holds a directory per agent, named after it: its data, config file and log.
	Dir string
	// Name is the node name of a single agent, and the prefix of a cluster's ("NAME-1" ...).
	Name string
	// Token, when set, turns ACLs on with default policy deny, and is the initial management
	// token and the agent token, so that the agent can keep its own node in the catalog.
	Token string
	// TLS makes the API HTTPS only, with these certificates (see GenerateConsulTLS); with
	// VerifyIncoming, HTTPS clients must present a certificate signed by the CA.
	TLS            *ConsulTLSFiles
	VerifyIncoming bool
	// LogLevel is the agents' log_level; default $SDCTL_CONSUL_LOG_LEVEL, else INFO.
	LogLevel string
	// Defaults keeps Consul's own gossip, leave and autopilot timings and opens only what sdctl
	// uses: the HTTP API, LAN gossip and RPC (DNS and WAN gossip off), as the benchmark measures.
	// Without it the timings are short, so that a lost leader is replaced within a few seconds,
	// and DNS and WAN gossip listen too.
	Defaults bool
	// Logf receives the harness's notes, such as a retry on new ports.
	Logf Logf
	// Expect, above 1, is the bootstrap_expect of a single agent (StartConsul): the server
	// waits for servers that never come and has no leader, as the servers of a cluster that is
	// starting. It is ready once it answers /v1/agent/self.
	Expect int
}

// ConsulAgent is one consul server process. The exported fields describe it; do not change
// them.
type ConsulAgent struct {
	Name        string // node name
	HTTPAddr    string // "127.0.0.1:PORT" of the HTTP API; "" for TLS agents, which use HTTPSAddr
	HTTPSAddr   string // "127.0.0.1:PORT" of the HTTPS API; "" unless started with TLS
	DNSAddr     string // "127.0.0.1:PORT" of the DNS interface, UDP and TCP; "" with Defaults
	ServerAddr  string // raft/RPC "127.0.0.1:PORT", as /v1/status/leader and /v1/status/peers report it
	SerfLANAddr string // "127.0.0.1:PORT" of LAN gossip, what `consul join` takes
	SerfWANAddr string // "127.0.0.1:PORT" of WAN gossip; "" with Defaults
	Dir         string // the agent's directory: ConfigFile, DataDir and its log
	DataDir     string // the agent's data_dir
	ConfigFile  string // its configuration (HCL)
	Token       string // ACL token used by the harness and Consul: the management token with ACLs, else ""
	TLS         *ConsulTLSFiles
	// ReadyAfter is how long the last start or restart took, from starting the process until
	// the agent was ready.
	ReadyAfter time.Duration

	process
	bin      string
	opts     ConsulOptions
	expect   int            // bootstrap_expect
	peers    []*ConsulAgent // the cluster the agent belongs to, itself included
	client   *http.Client
	logLevel string
}

// StartConsul starts a single server that bootstraps itself, like `consul agent -dev` but with
// its state on disk (so Restart keeps it), and returns when it is leader and its node is in the
// catalog, ready to register services.
func StartConsul(ctx context.Context, opts ConsulOptions) (*ConsulAgent, error) {
	agents, err := startConsul(ctx, []string{opts.Name}, opts)
	if err != nil {
		return nil, err
	}
	return agents[0], nil
}

// StartConsulCluster starts n servers (bootstrap_expect n) that join each other, and returns
// when they have elected a leader, every server lists the n servers as alive members, each is a
// raft voter, and all agree on the leader.
func StartConsulCluster(ctx context.Context, n int, opts ConsulOptions) ([]*ConsulAgent, error) {
	if n < 1 {
		return nil, fmt.Errorf("a cluster of %d consul servers", n)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", opts.Name, i+1)
	}
	return startConsul(ctx, names, opts)
}

// startConsul starts an agent per name. On an error the agents it started are killed.
func startConsul(ctx context.Context, names []string, opts ConsulOptions) ([]*ConsulAgent, error) {
	agents := make([]*ConsulAgent, len(names))
	expect := len(names)
	if expect == 1 && opts.Expect > 1 {
		expect = opts.Expect
	}
	for i, name := range names {
		a, err := newConsulAgent(name, expect, opts)
		if err != nil {
			return nil, err
		}
		agents[i] = a
	}
	for _, a := range agents {
		a.peers = agents
	}
	for attempt := 1; ; attempt++ {
		err := startAll(ctx, agents)
		if err == nil {
			return agents, nil
		}
		for _, a := range agents {
			a.Kill()
		}
		if attempt == startAttempts || ctx.Err() != nil || !anyAddrInUse(agents) {
			var tails []string
			for _, a := range agents {
				tails = append(tails, a.LogTail(30))
			}
			return nil, fmt.Errorf("consul did not become ready: %w\n%s", err, strings.Join(tails, "\n"))
		}
		opts.Logf.printf("harness: a port was taken before consul could bind it; retrying on new ports: %v", err)
		for _, a := range agents {
			if err := a.resetDataDir(); err != nil {
				return nil, err
			}
			if err := a.pickPorts(); err != nil {
				return nil, err
			}
		}
	}
}

// newConsulAgent prepares an agent (directory, ports, client) without starting it.
func newConsulAgent(name string, expect int, opts ConsulOptions) (*ConsulAgent, error) {
	if opts.Bin == "" || opts.Dir == "" || name == "" {
		return nil, errors.New("consul: ConsulOptions need Bin, Dir and Name")
	}
	dir := filepath.Join(opts.Dir, name)
	a := &ConsulAgent{
		Name:       name,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigFile: filepath.Join(dir, "agent.hcl"),
		Token:      opts.Token,
		TLS:        opts.TLS,
		process:    process{what: "consul agent " + name, logPath: filepath.Join(dir, "consul.log")},
		bin:        opts.Bin,
		opts:       opts,
		expect:     expect,
		logLevel:   opts.LogLevel,
	}
	if a.logLevel == "" {
		a.logLevel = os.Getenv(ConsulLogLevelEnv)
	}
	if a.logLevel == "" {
		a.logLevel = "INFO"
	}
	a.peers = []*ConsulAgent{a}
	if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if a.client, err = newHTTPClient(a.TLS, true); err != nil {
		return nil, err
	}
	return a, a.pickPorts()
}

// startAll writes the agents' config files, starts them and waits until they are ready.
func startAll(ctx context.Context, agents []*ConsulAgent) error {
	for _, a := range agents {
		if err := a.writeConfig(); err != nil {
			return err
		}
	}
	for _, a := range agents {
		if err := a.start(a.bin, a.Dir, "agent", "-config-file="+a.ConfigFile); err != nil {
			return err
		}
	}
	return waitReady(ctx, agents)
}

func (a *ConsulAgent) pickPorts() error {
	n := 5
	if a.opts.Defaults {
		n = 3 // no DNS, no WAN gossip
	}
	ports, err := FreePorts(n)
	if err != nil {
		return err
	}
	a.HTTPAddr, a.HTTPSAddr, a.DNSAddr, a.SerfWANAddr = "", "", "", ""
	if a.TLS != nil {
		a.HTTPSAddr = loopback(ports[0])
	} else {
		a.HTTPAddr = loopback(ports[0])
	}
	a.SerfLANAddr = loopback(ports[1])
	a.ServerAddr = loopback(ports[2])
	if !a.opts.Defaults {
		a.DNSAddr = loopback(ports[3])
		a.SerfWANAddr = loopback(ports[4])
	}
	return nil
}

func (a *ConsulAgent) resetDataDir() error {
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
func (a *ConsulAgent) config() string {
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

	line("# Written by sdctl's test and benchmark harness (internal/harness).")
	line("node_name        = %q", a.Name)
	line("datacenter       = %q", ConsulDatacenter)
	line("data_dir         = %q", a.DataDir)
	line("log_level        = %q", a.logLevel)
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
	if !a.opts.Defaults {
		line("leave_on_terminate      = false")
		line("skip_leave_on_interrupt = false # SIGINT leaves the cluster gracefully")
	}
	line("ui_config { enabled = false }")
	line("connect { enabled = false }")
	line("peering { enabled = false }")
	line("performance {")
	line("  raft_multiplier  = 1")
	if !a.opts.Defaults {
		line(`  leave_drain_time = "500ms"`)
	}
	line("}")
	if !a.opts.Defaults {
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
	}
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
		line("    verify_incoming = %t", a.opts.VerifyIncoming)
		line("  }")
		line("}")
	}
	return b.String()
}

func (a *ConsulAgent) writeConfig() error {
	return os.WriteFile(a.ConfigFile, []byte(a.config()), 0o600)
}

func anyAddrInUse(agents []*ConsulAgent) bool {
	for _, a := range agents {
		if a.addrInUse() {
			return true
		}
	}
	return false
}

// Stop shuts the agent down gracefully and waits for it to exit, killing it after 30s. A
// member of a cluster gets SIGINT, so it leaves the cluster first (a leader hands leadership
// over); a single server gets SIGTERM and shuts down without leaving, since leaving a cluster
// of one only costs seconds of gossip timeouts. It does nothing when the agent is not running.
func (a *ConsulAgent) Stop() {
	var sig os.Signal = os.Interrupt
	if len(a.peers) == 1 {
		sig = syscall.SIGTERM
	}
	a.stop(sig, consulStopTimeout)
}

// Restart stops the agent gracefully when it runs (see Stop; use Kill first for a crash), then
// starts it again with the same ports, data dir and config, and waits until it knows a leader
// and is ready to register services. A cluster member must also be back as a raft voter (a
// second or so after it rejoins) and see every running member alive.
func (a *ConsulAgent) Restart(ctx context.Context) error {
	a.Stop()
	for attempt := 1; ; attempt++ {
		if err := a.start(a.bin, a.Dir, "agent", "-config-file="+a.ConfigFile); err != nil {
			return fmt.Errorf("restart %s: %w", a.what, err)
		}
		err := waitReady(ctx, []*ConsulAgent{a})
		if err == nil {
			return nil
		}
		if attempt < startAttempts && a.addrInUse() && ctx.Err() == nil {
			// Our own ports: something grabbed one while the agent was down. Wait and retry.
			a.opts.Logf.printf("harness: a port of %s was taken while it was down; retrying", a.what)
			a.Kill()
			time.Sleep(time.Second)
			continue
		}
		a.Kill()
		return fmt.Errorf("restart %s: %w\n%s", a.what, err, a.LogTail(30))
	}
}

// RestartEmpty crashes the agent (SIGKILL), deletes its data dir, and starts it again on the
// same ports, waiting as Restart does: an agent that lost everything it held, as a dev agent
// or a client agent without persistent storage does when it restarts.
func (a *ConsulAgent) RestartEmpty(ctx context.Context) error {
	a.Kill()
	if err := a.resetDataDir(); err != nil {
		return err
	}
	return a.Restart(ctx)
}

// URL is the base URL of the agent's API: "http://HTTPAddr" or "https://HTTPSAddr".
func (a *ConsulAgent) URL() string {
	if a.HTTPSAddr != "" {
		return "https://" + a.HTTPSAddr
	}
	return "http://" + a.HTTPAddr
}

// HTTPClient is a client for the agent's API; for TLS agents it trusts the CA and presents the
// client certificate. It sends no token by itself (see Request), and never uses a proxy.
func (a *ConsulAgent) HTTPClient() *http.Client {
	return a.client
}

// Request sends one API request, path like "/v1/catalog/services", with a.Token as
// X-Consul-Token when there is one. The caller closes the response body.
func (a *ConsulAgent) Request(method, path string, body io.Reader) (*http.Response, error) {
	req, err := a.newRequest(method, path, body)
	if err != nil {
		return nil, err
	}
	return a.client.Do(req)
}

func (a *ConsulAgent) newRequest(method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, a.URL()+path, body)
	if err != nil {
		return nil, err
	}
	if a.Token != "" {
		req.Header.Set("X-Consul-Token", a.Token)
	}
	return req, nil
}

// GetJSON GETs path and decodes a 200 answer into out.
func (a *ConsulAgent) GetJSON(path string, out any) error {
	req, err := a.newRequest(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return DoJSON(a.client, req, out)
}

// Env is the environment that points Consul's clients at this agent, sdctl's consul backend
// included: CONSUL_HTTP_ADDR, plus CONSUL_HTTP_TOKEN with ACLs, plus CONSUL_HTTP_SSL,
// CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY with TLS.
func (a *ConsulAgent) Env() []string {
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
// for example a.Consul(ctx, "catalog", "services"), for at most two minutes. It returns stdout;
// a failure's error includes stderr.
func (a *ConsulAgent) Consul(ctx context.Context, args ...string) (stdout string, err error) {
	ctx, cancel := context.WithTimeout(ctx, consulCLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = append(ServerEnv(os.Environ()), a.Env()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("consul %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(errOut.Bytes()))
	}
	return out.String(), nil
}

// ConsulLeader waits until the running agents among agents agree on a leader that is one of
// them, and returns it; it gives up when ctx ends. Agents that are not running (Kill, Stop)
// are ignored.
func ConsulLeader(ctx context.Context, agents ...*ConsulAgent) (*ConsulAgent, error) {
	for {
		l, err := leaderOf(agents)
		if err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no consul leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func leaderOf(agents []*ConsulAgent) (*ConsulAgent, error) {
	var leader string
	running := 0
	for _, a := range agents {
		if !a.Running() {
			continue
		}
		running++
		var addr string
		if err := a.GetJSON("/v1/status/leader", &addr); err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
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

// waitReady polls the agents until each is ready (see ready), for up to a minute, and returns
// early with an error when one of them exits.
func waitReady(ctx context.Context, agents []*ConsulAgent) error {
	ctx, cancel := context.WithTimeout(ctx, consulReadyTimeout)
	defer cancel()
	for {
		err := checkReady(agents)
		if err == nil {
			for _, a := range agents {
				a.ReadyAfter = time.Since(a.StartedAt())
			}
			return nil
		}
		for _, a := range agents {
			if exit := a.exited(); exit != nil {
				return exit
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkReady(agents []*ConsulAgent) error {
	for _, a := range agents {
		if err := a.ready(); err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
	}
	return nil
}

// ready checks that the agent knows a leader, answers /v1/agent/self and has its own node in
// the catalog, so services can be registered. A cluster member must also list every running
// member of its cluster as alive, be a raft voter, and agree with them on the leader.
func (a *ConsulAgent) ready() error {
	if err := a.exited(); err != nil {
		return err
	}
	if a.expect > len(a.peers) {
		// Waiting for servers that never come: there is no leader to wait for.
		var self map[string]any
		return a.GetJSON("/v1/agent/self", &self)
	}
	var leader string
	if err := a.GetJSON("/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	var self map[string]any
	if err := a.GetJSON("/v1/agent/self", &self); err != nil {
		return err
	}
	if len(a.peers) > 1 {
		if err := a.clusterReady(); err != nil {
			return err
		}
	}
	var node struct{ Node *struct{ Node string } }
	if err := a.GetJSON("/v1/catalog/node/"+a.Name, &node); err != nil {
		return err
	}
	if node.Node == nil {
		return errors.New("own node not in the catalog yet")
	}
	return nil
}

func (a *ConsulAgent) clusterReady() error {
	var members []struct {
		Name   string
		Status int
	}
	if err := a.GetJSON("/v1/agent/members", &members); err != nil {
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
	if err := a.GetJSON("/v1/operator/raft/configuration", &raft); err != nil {
		return err
	}
	voter := false
	for _, srv := range raft.Servers {
		voter = voter || srv.Address == a.ServerAddr && srv.Voter
	}
	if !voter {
		return errors.New("not a raft voter yet")
	}
	_, err := leaderOf(a.peers)
	return err
}

func newHTTPClient(files *ConsulTLSFiles, withCert bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only; ignore HTTP_PROXY
	if files != nil {
		cfg, err := files.ClientConfig(withCert)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// NewUUID returns a random UUID (version 4), as Consul's ACL tokens are.
func NewUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
