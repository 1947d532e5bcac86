// Package etcdtest starts real etcd servers for tests: a single member, a cluster, a member with
// authentication, a member serving TLS. Every server listens on loopback ports chosen for the
// test, keeps its data in the test's temporary directory, and is killed when the test ends,
// whether it passed or not. Server logs are shown only when the test fails.
//
// The etcd binary is the one pinned in tools/etcd, built once and cached by
// scripts/etcd-bin.sh, or the one named by $SDCTL_ETCD_BIN.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
)

// BinEnv names an etcd server binary to use instead of building the pinned one.
const BinEnv = "SDCTL_ETCD_BIN"

// Timing for loopback clusters: a tenth of etcd's defaults would make a loaded CI machine
// call elections for nothing; half of them still elects a new leader within about a second
// of losing one. Lease TTLs of 1s are accepted with these (etcd's minimum is 1.5 election
// timeouts, rounded up to whole seconds).
const (
	heartbeatMillis = 50
	electionMillis  = 500
)

// startTimeout bounds the wait for a new member or cluster to serve with a leader. A cold
// start on a loaded two-core machine takes a few seconds; this leaves plenty of room.
const startTimeout = 60 * time.Second

var (
	binMu   sync.Mutex
	binPath string
	binErr  error
)

// Binary returns the path of the etcd server binary: $SDCTL_ETCD_BIN when set, else the one
// scripts/etcd-bin.sh builds (once, then cached). When neither is available it skips t, or
// fails it when testutil.RequireAllEnv is set.
func Binary(t testing.TB) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binPath == "" && binErr == nil {
		binPath, binErr = findBinary(t)
	}
	if binErr != nil {
		testutil.SkipUnlessRequired(t, "no etcd server binary: "+binErr.Error())
	}
	return binPath
}

func findBinary(t testing.TB) (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinEnv, p, err)
		}
		return p, nil
	}
	script := filepath.Join(testutil.ModuleRoot(t), "scripts", "etcd-bin.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Member is one etcd server process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	// Auth is set on members started by StartAuth.
	Auth *Auth
	// TLS is set on members started by StartTLS: the files a client presents.
	TLS *TLSFiles

	bin  string
	args []string
	log  string // file receiving the server's output across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// Endpoint is the member's client URL, as given to an etcd client.
func (m *Member) Endpoint() string { return m.ClientURL }

// Running reports whether the member's process is alive.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Kill ends the member with SIGKILL, as a crash would, and waits until it is gone.
func (m *Member) Kill() { m.signal(os.Kill, 0) }

// Stop ends the member with SIGTERM, giving it 10s to shut down before killing it.
func (m *Member) Stop() { m.signal(terminate, 10*time.Second) }

func (m *Member) signal(sig os.Signal, grace time.Duration) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-done
}

// Restart starts a stopped or killed member again on the same ports and data directory and
// waits until it answers (it may still be catching up with the cluster's leader).
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if m.Running() {
		t.Fatalf("etcdtest: Restart of member %s, which is still running", m.Name)
	}
	if err := m.start(); err != nil {
		t.Fatalf("etcdtest: restart %s: %v\n%s", m.Name, err, m.logTail(40))
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitServing(ctx, m, false); err != nil {
		t.Fatalf("etcdtest: restarted member %s does not serve: %v\n%s", m.Name, err, m.logTail(40))
	}
}

// start launches the process with m.args; it does not wait for it to serve.
func (m *Member) start() error {
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), m.bin, strings.Join(m.args, " "))
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// exited reports whether the process ended by itself, with the reason from its log.
func (m *Member) exited() error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	select {
	case <-done:
		return fmt.Errorf("etcd member %s exited (%v)", m.Name, cmd.ProcessState)
	default:
		return nil
	}
}

// logTail returns the last n lines of the member's output.
func (m *Member) logTail(n int) string {
	b, err := os.ReadFile(m.log)
	if err != nil {
		return fmt.Sprintf("(no log for %s: %v)", m.Name, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d earlier lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return fmt.Sprintf("--- log of etcd member %s (%s):\n%s", m.Name, m.log, strings.Join(lines, "\n"))
}

// StartSingle starts a one-member cluster and waits until it serves. Like every Start function
// it skips the test with -short.
func StartSingle(t testing.TB) *Member {
	t.Helper()
	return startCluster(t, 1, nil)[0]
}

// StartCluster starts an n-member cluster from a static initial-cluster list and waits until
// every member serves and the cluster has a leader.
func StartCluster(t testing.TB, n int) []*Member {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: StartCluster(%d)", n)
	}
	return startCluster(t, n, nil)
}

// clusterConfig adjusts the members of a cluster before they start.
type clusterConfig struct {
	// scheme of the client URLs: "http" unless TLS is on.
	scheme string
	// extra flags for every member.
	flags []string
	// tls is what the harness presents to members while waiting for them.
	tls *TLSFiles
}

func startCluster(t testing.TB, n int, cc *clusterConfig) []*Member {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd servers; skipped with -short")
	}
	bin := Binary(t)
	if cc == nil {
		cc = &clusterConfig{}
	}
	if cc.scheme == "" {
		cc.scheme = "http"
	}
	root := t.TempDir()
	// A port chosen by listening on :0 and closing may be taken by someone else before etcd
	// binds it; a start that fails that way is retried with new ports.
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		members, err := launch(t, bin, filepath.Join(root, fmt.Sprintf("try%d", attempt)), n, cc)
		if err == nil {
			return members
		}
		lastErr = err
		for _, m := range members {
			m.Kill()
		}
		var tail []string
		for _, m := range members {
			tail = append(tail, m.logTail(30))
		}
		if !strings.Contains(strings.Join(tail, "\n"), "address already in use") {
			t.Fatalf("etcdtest: start %d member(s): %v\n%s", n, err, strings.Join(tail, "\n"))
		}
		t.Logf("etcdtest: a port was taken while starting etcd; retrying with new ports")
	}
	t.Fatalf("etcdtest: start %d member(s): %v", n, lastErr)
	return nil
}

// launch starts n members under dir and waits for them; it registers their clean-up with t.
func launch(t testing.TB, bin, dir string, n int, cc *clusterConfig) ([]*Member, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	token := fmt.Sprintf("sdctl-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	members := make([]*Member, n)
	var initial []string
	for i := range members {
		name := fmt.Sprintf("m%d", i+1)
		m := &Member{
			Name:      name,
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", cc.scheme, ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			DataDir:   filepath.Join(dir, name, "data"),
			TLS:       cc.tls,
			bin:       bin,
			log:       filepath.Join(dir, name, "etcd.log"),
		}
		members[i] = m
		initial = append(initial, name+"="+m.PeerURL)
	}
	for _, m := range members {
		if err := os.MkdirAll(filepath.Dir(m.DataDir), 0o700); err != nil {
			return nil, err
		}
		m.args = append([]string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", fmt.Sprint(heartbeatMillis),
			"--election-timeout", fmt.Sprint(electionMillis),
			// Test data need not survive a power cut; fsync on a shared CI disk is the slowest
			// part of every write.
			"--unsafe-no-fsync",
			"--log-level", "info",
		}, cc.flags...)
	}
	for _, m := range members {
		if err := m.start(); err != nil {
			return members, err
		}
		t.Cleanup(func() {
			m.Kill()
			if t.Failed() {
				t.Log(m.logTail(60))
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	errs := make(chan error, n)
	for _, m := range members {
		go func() { errs <- waitServing(ctx, m, true) }()
	}
	for range members {
		if err := <-errs; err != nil {
			return members, err
		}
	}
	return members, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// errNotReady is what waitServing reports while a member answers without a leader.
var errNotReady = errors.New("no leader yet")
