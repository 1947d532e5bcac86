package e2e

// Helpers for the tests that run sdctl against real Consul and etcd servers (consul_test.go,
// etcd_test.go).

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// serverEnv is a new user's environment (see userEnv) without any CONSUL_ or ETCD variable of
// the machine running the tests, plus extra ("KEY=VALUE").
func serverEnv(t *testing.T, extra ...string) []string {
	return append(harness.ServerEnv(userEnv(t)), extra...)
}

// withEnv returns a copy of env with extra appended (later entries win in os/exec).
func withEnv(env []string, extra ...string) []string {
	return append(append([]string(nil), env...), extra...)
}

// mustRun runs sdctl and fails the test unless it exits 0; it returns stdout.
func mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, stderr, code := run(t, env, args...)
	if code != 0 {
		t.Fatalf("sdctl %s: exit %d, want 0\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// runCode runs sdctl, fails the test unless it exits with want, and returns stdout and stderr.
func runCode(t *testing.T, env []string, want int, args ...string) (string, string) {
	t.Helper()
	out, stderr, code := run(t, env, args...)
	if code != want {
		t.Fatalf("sdctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, stderr)
	}
	return out, stderr
}

// eventually calls f every 100ms until it returns nil, failing the test with f's last error
// after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	registrytest.Eventually(t, timeout, 100*time.Millisecond, f)
}

// countingListener accepts and counts TCP connections, closing them at once: an address that
// shows whether sdctl tried to talk to its server at all.
type countingListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{Listener: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
			conn.Close()
		}
	}()
	return c
}

func (c *countingListener) Accepted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// proc is an sdctl process running in the background.
type proc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr testutil.SyncBuffer
	done           chan struct{}
	code           int // exit code, once done is closed; -1 when killed by a signal
}

// startSdctl starts sdctl in the background; t.Cleanup kills it if it still runs.
func startSdctl(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	sdctl, _ := binaries(t)
	return startProgram(t, sdctl, env, args...)
}

// startProgram starts the program bin in the background; t.Cleanup kills it if it still runs.
func startProgram(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.code = exitOf(p.cmd.Wait())
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) String() string { return "sdctl " + strings.Join(p.args, " ") }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// firstLine waits up to timeout for the process to print a line on stdout and returns it.
func (p *proc) firstLine(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if line, _, ok := strings.Cut(p.stdout.String(), "\n"); ok {
			return line
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s printed no line (exited: %t, code %d)\nstdout: %s\nstderr: %s", p, p.exited(), p.code, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits up to timeout for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v\nstdout: %s\nstderr: %s", p, timeout, p.stdout.String(), p.stderr.String())
		return 0
	}
}

// terminate sends SIGTERM, as `kill PID` in a shell does.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// noSecret fails the test when secret appears in any of outputs.
func noSecret(t *testing.T, secret, what string, outputs ...string) {
	t.Helper()
	if secret == "" {
		t.Fatal("noSecret: empty secret")
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s printed the secret:\n%s", what, out)
		}
	}
}

// tracedCommands are the commands a test of credentials runs with valid ones: every command
// that talks to the registry, most with trace logging, which shows a secret if one leaks.
// They leave web 10.0.0.1:80 registered, with the flags first in its registration.
func tracedCommands(first ...string) [][]string {
	return [][]string{
		append([]string{"--log-level", "trace", "register", "web", "10.0.0.1:80"}, first...),
		{"register", "web", "10.0.0.2:80"},
		{"resolve", "web"},
		{"--log-level", "trace", "resolve", "web", "--all", "-o", "json"},
		{"--log-level", "trace", "catalog"},
		{"catalog", "web"},
		{"--log-level", "trace", "cluster", "status"},
		{"--log-level", "trace", "deregister", "web-10.0.0.2-80"},
	}
}

// failover is the outcome of a resolve loop during which the leader was killed.
type failover struct {
	calls    int
	killAt   int
	failures []string      // "call N: exit C: stderr" per failed call
	longest  time.Duration // slowest call
	slowest  int           // its number
	election time.Duration // from the kill until a survivor reported a new leader; 0 if unseen
	// afterKill holds, for each call after the kill, when it started relative to the kill.
	afterKill []time.Duration
}

// resolveLoop runs `sdctl ARGS...` n times one after another, as a shell loop would, calls
// kill after call killAt, and counts the calls that did not exit 0 with one line on stdout.
// From the kill on, it asks elected every 20 ms, for up to a minute, whether a survivor reports
// a new leader: the election time.
func resolveLoop(t *testing.T, env []string, n, killAt int, kill func(), elected func() bool, args ...string) failover {
	t.Helper()
	f := failover{killAt: killAt}
	var election <-chan time.Duration
	var killed time.Time
	for i := 1; i <= n; i++ {
		start := time.Now()
		if !killed.IsZero() {
			f.afterKill = append(f.afterKill, start.Sub(killed))
		}
		out, stderr, code := run(t, env, args...)
		d := time.Since(start)
		f.calls++
		if d > f.longest {
			f.longest, f.slowest = d, i
		}
		if code != 0 || strings.Count(out, "\n") != 1 {
			f.failures = append(f.failures, fmt.Sprintf("call %d (%v): exit %d: %q %s", i, d.Round(time.Millisecond), code, out, strings.TrimSpace(stderr)))
		}
		if i == killAt {
			killed = time.Now()
			kill()
			election = timeElection(t.Context(), killed, elected)
		}
	}
	if election != nil {
		select {
		case f.election = <-election:
		case <-time.After(60 * time.Second):
		}
	}
	return f
}

// timeElection asks elected every 20 ms, for up to a minute after killed, and yields the time
// from killed until it first answered true; the channel is closed without a value if it never did.
func timeElection(ctx context.Context, killed time.Time, elected func() bool) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		defer close(out)
		for time.Since(killed) < time.Minute && ctx.Err() == nil {
			if elected() {
				out <- time.Since(killed)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return out
}

// report logs the loop's numbers and fails the test when more than allowed calls failed.
func (f failover) report(t *testing.T, allowed int) {
	t.Helper()
	during := 0
	for _, d := range f.afterKill {
		if f.election == 0 || d < f.election {
			during++
		}
	}
	t.Logf("%d resolve calls, leader killed after call %d: %d failed; slowest call #%d took %v; new leader after %v; %d calls started before it was elected",
		f.calls, f.killAt, len(f.failures), f.slowest, f.longest.Round(time.Millisecond), f.election.Round(time.Millisecond), during)
	for _, s := range f.failures {
		t.Log(s)
	}
	if len(f.failures) > allowed {
		t.Errorf("%d of %d resolve calls failed while the leader was replaced, want at most %d", len(f.failures), f.calls, allowed)
	}
}
