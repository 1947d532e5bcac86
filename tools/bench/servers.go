package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
)

// The Consul and etcd servers the bench starts through internal/harness, the tests' harness:
// one of each, on loopback ports that were free a moment before, with their data under the
// scratch directory, and with the servers' own timings and durability (the harness's Defaults).
// Each is stopped when its part of the run ends, and by a deferred stop on an error or Ctrl-C;
// the kernel kills it should the bench itself be killed, and it runs in its own process group,
// so a Ctrl-C in the terminal reaches the bench, which then stops it, rather than the server
// directly.

// serverBinary returns the server binary to run: the flag's value, else what
// harness.ServerBinary finds ($SDCTL_CONSUL_BIN or $SDCTL_ETCD_BIN, else the pinned version,
// built on first use, which takes minutes; its progress goes to stderr).
func serverBinary(flagValue, kind string) (string, error) {
	if flagValue == "" {
		return harness.ServerBinary(kind, os.Stderr)
	}
	return harness.Executable(flagValue)
}

// serverProc is what the bench does with a harness server, Consul or etcd.
type serverProc interface {
	Stop()
	Running() bool
	LogTail(n int) string
	CPUTime() (total, exited time.Duration)
}

// server is one Consul or etcd server started by the bench.
type server struct {
	serverProc
	kind    string // "consul" or "etcd"
	bin     string
	version string
	addr    string        // 127.0.0.1:PORT of the client API
	started time.Duration // from exec to ready
	flags   string        // how it was configured, for the report
	consul  *harness.ConsulAgent
}

// Stop stops the server; it is safe on nil and more than once.
func (s *server) Stop() {
	if s != nil {
		s.serverProc.Stop()
	}
}

// running reports whether the server process is still alive.
func (s *server) running() bool { return s != nil && s.Running() }

// servers are all the servers the bench started, for their CPU time.
var servers struct {
	sync.Mutex
	list []*server
}

func addServer(s *server) *server {
	servers.Lock()
	defer servers.Unlock()
	servers.list = append(servers.list, s)
	return s
}

// serversCPU returns the CPU seconds of every server so far, and the part of it that belongs
// to processes already reaped (and so counted in this process's RUSAGE_CHILDREN).
func serversCPU() (total, reaped float64) {
	servers.Lock()
	defer servers.Unlock()
	for _, s := range servers.list {
		t, r := s.CPUTime()
		total += t.Seconds()
		reaped += r.Seconds()
	}
	return total, reaped
}

func serverVersion(bin, kind string) string {
	arg := "version"
	if kind == "etcd" {
		arg = "--version"
	}
	out, err := exec.Command(bin, arg).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	// "Consul v1.14.11", "etcd Version: 3.6.13"
	return strings.Replace(strings.TrimSpace(line), "etcd Version: ", "etcd ", 1)
}

// httpClient talks to the servers on loopback, never through a proxy.
var httpClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4},
	Timeout:   10 * time.Second,
}

// httpJSON sends a request and decodes a 200 answer into out.
func httpJSON(method, url string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	return harness.DoJSON(httpClient, req, out)
}

// startConsul starts one Consul server agent under dir that bootstraps itself, with the HTTP
// API, gossip and RPC on free loopback ports (DNS, WAN gossip and gRPC off), and waits until it
// is leader and its node is in the catalog, so that services can be registered.
func startConsul(ctx context.Context, dir, bin string) (*server, error) {
	a, err := harness.StartConsul(ctx, harness.ConsulOptions{
		Bin: bin, Dir: dir, Name: "bench", LogLevel: "WARN", Defaults: true,
		Logf: func(format string, args ...any) { progress("  "+format, args...) },
	})
	if err != nil {
		return nil, err
	}
	return addServer(&server{
		serverProc: a, kind: "consul", bin: bin, version: serverVersion(bin, "consul"), addr: a.HTTPAddr,
		started: a.ReadyAfter, consul: a,
		flags: "one server agent, `bootstrap_expect = 1`, `raft_multiplier = 1`, HTTP API, LAN gossip and RPC on free loopback ports (DNS, WAN gossip, gRPC and the UI off), Consul's defaults otherwise, log level WARN",
	}), nil
}

// startEtcd starts a one-member etcd cluster under dir on free loopback ports, with etcd's
// defaults (fsync on every write included), and waits until it serves with a leader.
func startEtcd(ctx context.Context, dir, bin string) (*server, error) {
	ms, err := harness.StartEtcd(ctx, 1, harness.EtcdOptions{
		Bin: bin, Dir: dir, LogLevel: "warn", Defaults: true,
		Logf: func(format string, args ...any) { progress("  "+format, args...) },
	})
	if err != nil {
		return nil, err
	}
	m := ms[0]
	return addServer(&server{
		serverProc: m, kind: "etcd", bin: bin, version: serverVersion(bin, "etcd"),
		addr: strings.TrimPrefix(m.ClientURL, "http://"), started: m.ReadyAfter,
		flags: "one member, client and peer URLs on free loopback ports, etcd's defaults otherwise (fsync on every write, heartbeat 100 ms, election timeout 1 s), log level warn",
	}), nil
}
