//go:build linux

package plugins_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins/host"
	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// warmHost is a host that keeps backends warm in a runtime directory of the test's own. Every
// warm backend it started is stopped when the test ends, and the test fails if one survives.
func warmHost(t *testing.T) *host.Host {
	t.Helper()
	h := newHost(t, nil)
	h.IdleTimeout = time.Minute
	h.RuntimeDir = filepath.Join(t.TempDir(), "run")
	h.LogDir = t.TempDir()
	t.Cleanup(func() {
		h.StopWarm("")
		if left := h.Warm(""); len(left) > 0 {
			t.Errorf("warm backends still running after StopWarm: %+v", left)
		}
	})
	return h
}

func fileCandidate(t *testing.T, h *host.Host) host.Candidate {
	t.Helper()
	cand, err := h.Find("file")
	if err != nil {
		t.Fatal(err)
	}
	return cand
}

func attach(t *testing.T, h *host.Host, section map[string]any) *host.Client {
	t.Helper()
	c, err := h.Attach(context.Background(), fileCandidate(t, h), section)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Warm() {
		t.Fatal("Attach returned a client that is not warm")
	}
	return c
}

// The conformance suite through the reattach path: each registry is a warm backend that was
// started by one client, detached from, and reached again by a second client.
func TestConformanceFileThroughWarmBackend(t *testing.T) {
	h := warmHost(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		section := map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")}
		first := attach(t, h, section)
		pid := first.Pid()
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		c := attach(t, h, section)
		if c.Pid() != pid {
			t.Fatalf("reattached to pid %d, want the warm backend %d", c.Pid(), pid)
		}
		t.Cleanup(func() {
			c.Close()
			stopPid(t, pid)
		})
		return c
	}, registrytest.Options{Name: "file-warm", TTL: true, Watch: true, MinTTL: time.Second})
}

func stopPid(t *testing.T, pid int) {
	t.Helper()
	_ = syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, pid)
}

// waitGone waits until pid has exited, and fails the test if that takes more than 10 seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still runs", pid)
}

func TestWarmConcurrentAttachStartsOneBackend(t *testing.T) {
	h := warmHost(t)
	section := map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")}
	const n = 200
	pids := make(chan int, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := h.Attach(context.Background(), fileCandidate(t, h), section)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := c.Services(context.Background()); err != nil {
				errs <- err
				return
			}
			pids <- c.Pid()
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		t.Error(err)
	}
	seen := map[int]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) != 1 {
		t.Fatalf("%d concurrent attaches reached %d backend processes %v, want 1", n, len(seen), seen)
	}
}

func TestWarmBackendKilledIsReplaced(t *testing.T) {
	h := warmHost(t)
	section := map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")}
	c := attach(t, h, section)
	if err := c.Register(context.Background(), registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	old := c.Pid()
	c.Close()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, old)

	c = attach(t, h, section)
	defer c.Close()
	if c.Pid() == old {
		t.Fatalf("attached to the killed backend %d", old)
	}
	got, err := c.Instances(context.Background(), registry.Query{Name: "web"})
	if err != nil || len(got) != 1 {
		t.Fatalf("after replacement: %v, %v; want the instance registered before", got, err)
	}
}

func TestWarmBackendPerConfiguration(t *testing.T) {
	h := warmHost(t)
	dir := t.TempDir()
	a := attach(t, h, map[string]any{"path": filepath.Join(dir, "a.json")})
	defer a.Close()
	b := attach(t, h, map[string]any{"path": filepath.Join(dir, "b.json")})
	defer b.Close()
	if a.Pid() == b.Pid() {
		t.Fatalf("two configurations share backend %d", a.Pid())
	}
	if err := a.Register(context.Background(), registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Instances(context.Background(), registry.Query{Name: "web"}); err != nil || len(got) != 0 {
		t.Fatalf("configuration b sees %v, %v; want nothing", got, err)
	}
	again := attach(t, h, map[string]any{"path": filepath.Join(dir, "a.json")})
	defer again.Close()
	if again.Pid() != a.Pid() {
		t.Fatalf("configuration a reattached to %d, want %d", again.Pid(), a.Pid())
	}
}

func TestWarmBackendIdlesOut(t *testing.T) {
	h := warmHost(t)
	h.IdleTimeout = 200 * time.Millisecond
	c := attach(t, h, map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")})
	pid := c.Pid()
	c.Close()
	waitGone(t, pid)
	if left := h.Warm(""); len(left) != 0 {
		t.Fatalf("after the idle timeout: %+v still listed", left)
	}
}

func TestWarmRuntimeDirMustBePrivate(t *testing.T) {
	h := warmHost(t)
	if err := os.MkdirAll(h.RuntimeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.RuntimeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := h.Attach(context.Background(), fileCandidate(t, h), map[string]any{"path": filepath.Join(t.TempDir(), "r.json")})
	if err == nil {
		t.Fatal("Attach used a runtime directory other users can enter")
	}
}

// envPeerDial makes the test binary a client that connects to a socket and reports whether the
// server answered its Info call (exit 0) or hung up (exit 1).
const envPeerDial = "SDCTL_TEST_PEER_DIAL"

func runPeerDial() int {
	conn, err := net.Dial("unix", os.Getenv(envPeerDial))
	if err != nil {
		return 2
	}
	c := wire.NewClient(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Info(ctx, &pb.InfoRequest{}); err != nil {
		return 1 // the server closed the connection without answering
	}
	return 0
}

// TestWarmBackendRefusesOtherUsers opens the runtime directory and the socket to everyone, so
// that only the backend's SO_PEERCRED check stands between another user and the backend.
func TestWarmBackendRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipUnlessRequired(t, "needs root to run a client as another user")
	}
	h := warmHost(t)
	c := attach(t, h, map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")})
	c.Close()
	socks, _ := filepath.Glob(filepath.Join(h.RuntimeDir, "file-*.sock"))
	if len(socks) != 1 {
		t.Fatalf("sockets %v, want one", socks)
	}
	// A world-readable copy of the test binary, reachable by "nobody".
	pub, err := os.MkdirTemp("", "sdctl-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	exe, _ := os.Executable()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pub, "peer")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for dir := h.RuntimeDir; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{pub, socks[0]} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	dial := func(uid uint32) int {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envPeerDial+"="+socks[0])
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := dial(0); code != 0 {
		t.Fatalf("the owner's client: exit %d, want 0 (served)", code)
	}
	if code := dial(65534); code != 1 {
		t.Fatalf("another user's client: exit %d, want 1 (connection closed by the backend)", code)
	}
}

// A bundled backend (its own executable beside sdctl) is kept warm and reattached to like a
// built-in one.
func TestWarmBundledBackend(t *testing.T) {
	dir := memoryBeside(t, "memory")
	h := warmHost(t)
	h.Executable = filepath.Join(dir, "sdctl")
	h.Bundled = []host.BundledBackend{{Name: "memory"}}
	cand, err := h.Find("memory")
	if err != nil || !h.CanWarm(cand) {
		t.Fatalf("Find: %+v, %v; want a bundled backend that may be kept warm", cand, err)
	}
	ctx := context.Background()
	c, err := h.Attach(ctx, cand, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	c.Close()
	again, err := h.Attach(ctx, cand, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Warm() || again.Pid() != pid {
		t.Fatalf("second attach: warm %t pid %d, want the warm backend %d", again.Warm(), again.Pid(), pid)
	}
	// The memory backend keeps its data in the process: the instance proves it is the same one.
	if got, err := again.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(got) != 1 {
		t.Fatalf("after reattaching: %v, %v; want the instance registered before", got, err)
	}
}
