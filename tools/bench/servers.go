package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The Consul and etcd servers the bench starts: one of each, on loopback ports that were free
// a moment before, with their data under the scratch directory. Each is stopped when its part of
// the run ends, and by a deferred stop on an error or Ctrl-C; the kernel kills it should the
// bench itself be killed (Pdeathsig), and it runs in its own process group, so a Ctrl-C in the
// terminal reaches the bench, which then stops it, rather than the server directly.

const (
	serverReadyTimeout = 60 * time.Second
	serverStopTimeout  = 10 * time.Second
)

// serverBinary returns the server binary to run: the flag's value, else $env, else what the
// repository's script prints (it builds the pinned version on first use, which takes minutes).
func serverBinary(flagValue, env, script string) (string, error) {
	path := flagValue
	if path == "" {
		path = os.Getenv(env)
	}
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		var stdout bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(root, "scripts", script))
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr // a cold build reports its progress
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("scripts/%s: %w", script, err)
		}
		path = strings.TrimSpace(stdout.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	return filepath.Abs(path)
}

// moduleRoot finds the sdctl repository from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(data, []byte("module github.com/sdctl/sdctl\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sdctl repository (no go.mod of github.com/sdctl/sdctl above the working directory)")
		}
		dir = parent
	}
}

// server is one Consul or etcd process started by the bench.
type server struct {
	kind    string // "consul" or "etcd"
	bin     string
	version string
	dir     string // its data and log live here
	logPath string
	addr    string // 127.0.0.1:PORT of the client API
	args    []string
	started time.Duration // from exec to ready
	flags   string        // how it was configured, for the report
	data    string        // its data directory
	ready   func() error  // nil once it serves

	cmd  *exec.Cmd
	done chan struct{}
	stop sync.Once
}

// startServer starts a server: setup picks its ports and writes s.args (and its config), then
// the process is started and polled with ready until it serves. A start that fails because a port was taken in the meantime is retried
// on new ports.
func startServer(ctx context.Context, s *server, setup func(try int) error, ready func() error) error {
	s.version = serverVersion(s.bin, s.kind)
	var err error
	for try := 1; try <= 3; try++ {
		if err = setup(try); err != nil {
			return err
		}
		err = s.launch(ctx, ready)
		if err == nil {
			return nil
		}
		s.kill()
		if !strings.Contains(s.logTail(200), "address already in use") || ctx.Err() != nil {
			break
		}
		progress("  a port was taken before %s could bind it; retrying on new ports", s.kind)
	}
	return fmt.Errorf("%s did not start: %w\n%s", s.kind, err, s.logTail(30))
}

func (s *server) launch(ctx context.Context, ready func() error) error {
	if err := os.MkdirAll(filepath.Dir(s.logPath), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- bench: %s %s\n", s.bin, strings.Join(s.args, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := startLocked(cmd); err != nil {
		return err
	}
	s.cmd, s.done, s.stop = cmd, make(chan struct{}), sync.Once{}
	done := s.done
	trackServer(cmd.Process.Pid)
	go func() {
		_ = cmd.Wait()
		reapedServer(cmd.Process.Pid, cmd.ProcessState)
		close(done)
	}()

	deadline := time.Now().Add(serverReadyTimeout)
	for {
		err := ready()
		if err == nil {
			s.started = time.Since(t0)
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited (%v)", s.kind, cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", serverReadyTimeout, err)
		}
	}
}

// Stop ends the server with SIGTERM, then SIGKILL after serverStopTimeout, and waits for it.
// It is safe to call more than once, and on a server that never started.
func (s *server) Stop() {
	if s == nil || s.cmd == nil {
		return
	}
	s.stop.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(serverStopTimeout):
			progress("%s did not stop within %s of SIGTERM; killing it", s.kind, serverStopTimeout)
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	s.stop.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
}

// running reports whether the server process is still alive.
func (s *server) running() bool {
	if s == nil || s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *server) logTail(n int) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- last lines of " + s.logPath + ":\n" + strings.Join(lines, "\n")
}

// The servers' CPU time, for the report's CPU-use table: from /proc/PID/stat while they run,
// from wait4's rusage once they have exited.
var serverCPU = struct {
	sync.Mutex
	live   map[int]bool
	reaped float64 // seconds
}{live: map[int]bool{}}

func trackServer(pid int) {
	serverCPU.Lock()
	defer serverCPU.Unlock()
	serverCPU.live[pid] = true
}

func reapedServer(pid int, ps *os.ProcessState) {
	serverCPU.Lock()
	defer serverCPU.Unlock()
	delete(serverCPU.live, pid)
	if ps != nil {
		serverCPU.reaped += (ps.UserTime() + ps.SystemTime()).Seconds()
	}
}

// serversCPU returns the CPU seconds of every server so far, and the part of it that belongs
// to servers already reaped (and so counted in this process's RUSAGE_CHILDREN).
func serversCPU() (total, reaped float64) {
	serverCPU.Lock()
	defer serverCPU.Unlock()
	total = serverCPU.reaped
	for pid := range serverCPU.live {
		total += procCPU(pid)
	}
	return total, serverCPU.reaped
}

// procCPU is the user+system time of a running process, from /proc/PID/stat.
func procCPU(pid int) float64 {
	data, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces; the fields after it start at 3.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64) // field 14
	stime, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (utime + stime) / clockTick
}

// Linux sends Pdeathsig when the thread that forked the child exits, not the process. Go may
// retire threads, so servers are forked from one goroutine locked to its thread for good.
var (
	spawnOnce sync.Once
	spawnCh   = make(chan spawnReq)
)

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func startLocked(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}

// serverEnv is the bench's environment without the variables that would point a Consul or etcd
// process elsewhere.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "ETCD") {
			env = append(env, kv)
		}
	}
	return env
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

// freeLoopbackPorts returns n distinct ports free on 127.0.0.1 for TCP and UDP (Consul's gossip
// uses both) a moment ago. A port handed out once is not handed out again in this run.
func freeLoopbackPorts(n int) ([]int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
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
		if err != nil || usedPorts.m[port] {
			continue
		}
		usedPorts.m[port] = true
		out = append(out, port)
	}
	return out, nil
}

var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

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
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// startConsul starts one Consul server agent that bootstraps itself, with the HTTP API, gossip
// and RPC on free loopback ports (DNS, WAN gossip and gRPC off), and waits until it is leader
// and its node is in the catalog, so that services can be registered.
func startConsul(ctx context.Context, ws *workspace, bin string) (*server, error) {
	s := &server{kind: "consul", bin: bin, dir: filepath.Join(ws.root, "consul")}
	s.logPath = filepath.Join(s.dir, "consul.log")
	const node = "bench"
	setup := func(try int) error {
		data := filepath.Join(s.dir, fmt.Sprintf("data%d", try))
		s.data = data
		if err := os.MkdirAll(data, 0o700); err != nil {
			return err
		}
		ports, err := freeLoopbackPorts(3)
		if err != nil {
			return err
		}
		s.addr = "127.0.0.1:" + itoa(ports[0])
		conf := fmt.Sprintf(`node_name            = %q
datacenter           = "dc1"
data_dir             = %q
log_level            = "WARN"
server               = true
bootstrap_expect     = 1
bind_addr            = "127.0.0.1"
advertise_addr       = "127.0.0.1"
client_addr          = "127.0.0.1"
disable_update_check = true
ui_config { enabled = false }
connect { enabled = false }
peering { enabled = false }
performance { raft_multiplier = 1 }
ports {
  http     = %d
  serf_lan = %d
  server   = %d
  https    = -1
  dns      = -1
  serf_wan = -1
  grpc     = -1
  grpc_tls = -1
}
`, node, data, ports[0], ports[1], ports[2])
		file := filepath.Join(s.dir, "agent.hcl")
		s.args = []string{"agent", "-config-file=" + file}
		s.flags = "one server agent, `bootstrap_expect = 1`, `raft_multiplier = 1`, HTTP API, LAN gossip and RPC on free loopback ports (DNS, WAN gossip, gRPC and the UI off), Consul's defaults otherwise, log level WARN"
		return os.WriteFile(file, []byte(conf), 0o600)
	}
	ready := func() error {
		var leader string
		if err := httpJSON("GET", "http://"+s.addr+"/v1/status/leader", nil, &leader); err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		var n struct{ Node *struct{ Node string } }
		if err := httpJSON("GET", "http://"+s.addr+"/v1/catalog/node/"+node, nil, &n); err != nil {
			return err
		}
		if n.Node == nil {
			return errors.New("own node not in the catalog yet")
		}
		return nil
	}
	s.ready = ready
	return s, startServer(ctx, s, setup, ready)
}

// startEtcd starts a one-member etcd cluster on free loopback ports, with etcd's defaults
// (fsync on every write included), and waits until it serves with a leader.
func startEtcd(ctx context.Context, ws *workspace, bin string) (*server, error) {
	s := &server{kind: "etcd", bin: bin, dir: filepath.Join(ws.root, "etcd")}
	s.logPath = filepath.Join(s.dir, "etcd.log")
	setup := func(try int) error {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return err
		}
		ports, err := freeLoopbackPorts(2)
		if err != nil {
			return err
		}
		s.addr = "127.0.0.1:" + itoa(ports[0])
		client, peer := "http://"+s.addr, "http://127.0.0.1:"+itoa(ports[1])
		s.args = []string{
			"--name", "bench",
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("data%d", try)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
			"--log-level", "warn",
		}
		s.flags = "one member, client and peer URLs on free loopback ports, etcd's defaults otherwise (fsync on every write, heartbeat 100 ms, election timeout 1 s), log level warn"
		return nil
	}
	ready := func() error {
		var h struct{ Health string }
		if err := httpJSON("GET", "http://"+s.addr+"/health", nil, &h); err != nil {
			return err
		}
		if h.Health != "true" {
			return errors.New("not healthy yet")
		}
		return nil
	}
	return s, startServer(ctx, s, setup, ready)
}
