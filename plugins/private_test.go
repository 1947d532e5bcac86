package plugins_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// startPrivate starts the built-in backend name over a socket pair and configures it with
// section.
func startPrivate(t *testing.T, h *host.Host, name string, section map[string]any) *host.Client {
	t.Helper()
	cand, err := h.Find(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.StartPrivate(cand)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Configure(context.Background(), section); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformanceFileThroughPrivateBackend(t *testing.T) {
	h := newHost(t, nil)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return startPrivate(t, h, "file", map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")})
	}, registrytest.Options{Name: "file-private", TTL: true, Watch: true, MinTTL: time.Second})
}

// Closing the client ends the backend process: nothing of it is left.
func TestPrivateBackendEndsWithItsClient(t *testing.T) {
	c := startPrivate(t, newHost(t, nil), "file", map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")})
	pid := c.Pid()
	if !alive(pid) || c.Exited() {
		t.Fatalf("backend %d is not running", pid)
	}
	if c.Warm() {
		t.Fatal("a private backend is reported warm")
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !c.Exited() || alive(pid) {
		t.Fatalf("backend %d still runs after Close", pid)
	}
	if d := time.Since(start); d >= host.KillGrace {
		t.Errorf("Close took %s: the backend had to be killed", d)
	}
}

func TestPrivateCrashingBackendIsNamed(t *testing.T) {
	c := startPrivate(t, newHost(t, nil), "crash", nil)
	err := c.Register(context.Background(), registry.Instance{ID: "a", Name: "a", Address: "10.0.0.1", Port: 1})
	if !errors.Is(err, host.ErrPluginExited) || !strings.Contains(err.Error(), `"crash"`) {
		t.Fatalf("Register on a crashing backend: %v, want ErrPluginExited naming the backend", err)
	}
}

// A bundled backend that cannot start says so in one line, within the start timeout, and
// nothing is logged above debug level meanwhile.
func TestPrivateBackendFailingToStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, says string }{
		{"exits", `echo '{"@level":"error","@message":"fatal: no config"}' >&2; exit 3`, `it exited before it was configured; its last line on stderr: "fatal: no config"`},
		{"hangs", "exec sleep 30", "it did not answer in time (see --plugin-timeout)"},
		{"garbage", "echo 'not a backend' >&3; exec sleep 30", "failed to start: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeScript(t, dir, tc.name, tc.body)
			var logged testutil.SyncBuffer
			h := newHost(t, hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Warn}))
			h.StartTimeout = time.Second
			start := time.Now()
			c, err := h.StartPrivate(host.Candidate{Name: tc.name, Path: path, Bundled: true})
			if err == nil {
				c.Close()
				t.Fatal("started")
			}
			if d := time.Since(start); d > h.StartTimeout+host.KillGrace {
				t.Errorf("took %s", d)
			}
			if msg := err.Error(); !errors.Is(err, host.ErrStartFailed) || strings.Contains(msg, "\n") ||
				!strings.Contains(msg, `bundled backend "`+tc.name+`"`) || !strings.Contains(msg, tc.says) {
				t.Errorf("error %q (ErrStartFailed: %t): want one line naming the backend that says %q", msg, errors.Is(err, host.ErrStartFailed), tc.says)
			}
			if out := logged.String(); out != "" {
				t.Errorf("a failed start logged above debug level:\n%s", out)
			}
		})
	}
}

// The backend's log lines reach the host's logger at their own level once it runs.
func TestPrivateBackendLogs(t *testing.T) {
	var buf testutil.SyncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	c := startPrivate(t, newHost(t, log), "chatty", map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")})
	c.Close()
	out := buf.String()
	if !strings.Contains(out, "hello from the plugin") || strings.Contains(out, "debug detail from the plugin") {
		t.Errorf("want the info line and not the debug one; log:\n%s", out)
	}
}

// An external backend bridged by the plugin host (here the test binary, which serves `backend
// bridge`) passes the conformance suite, and its death is reported as such.
func TestBridgedExternalBackend(t *testing.T) {
	bin := testutil.Build(t, "./examples/sdctl-backend-memory", "sdctl-backend-memory")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, nil)
	h.Dirs = []string{filepath.Dir(bin)}
	h.Executable = filepath.Join(t.TempDir(), "sdctl") // so that the test binary is the plugin host
	h.BuiltinServer = exe
	start := func(t *testing.T) *host.Client {
		cand, err := h.Find("memory")
		if err != nil {
			t.Fatal(err)
		}
		if !h.CanBridge(cand) {
			t.Fatalf("cannot bridge %+v", cand)
		}
		c, err := h.StartBridged(cand)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Configure(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	registrytest.Run(t, func(t *testing.T) registry.Registry { return start(t) },
		registrytest.Options{Name: "memory-bridged", TTL: true, Watch: true, MinTTL: time.Second})

	t.Run("BackendKilled", func(t *testing.T) {
		c := start(t)
		var plugin int
		for _, pid := range childrenOf(t, c.Pid()) {
			plugin = pid
		}
		if plugin == 0 {
			t.Fatalf("the bridge (pid %d) has no child", c.Pid())
		}
		if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, err := c.Services(context.Background())
		if !errors.Is(err, host.ErrPluginExited) || !strings.Contains(err.Error(), `"memory"`) {
			t.Fatalf("Services after the backend was killed: %v, want ErrPluginExited naming it", err)
		}
	})
}

// childrenOf lists the processes whose parent is pid (Linux).
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if child, err := strconv.Atoi(e.Name()); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}
