package plugins_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/builtin"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// The test binary doubles as the plugin: the host re-runs it as `backend serve NAME`, exactly as
// sdctl re-runs itself, so these tests cross a real process boundary.
func TestMain(m *testing.M) {
	if code, ok := plugins.ServeBuiltin(os.Args[1:], testBackends()); ok {
		os.Exit(code)
	}
	if code, ok := plugins.ServeBridge(os.Args[1:]); ok {
		os.Exit(code)
	}
	if os.Getenv(envPeerDial) != "" {
		os.Exit(runPeerDial())
	}
	if os.Getenv("SDCTL_TEST_HOST") != "" {
		os.Exit(runHostProcess())
	}
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// testBackends are the real built-ins plus a few that misbehave on purpose.
func testBackends() []plugins.Backend {
	crash := func(context.Context, map[string]any, *slog.Logger) (registry.Registry, error) {
		return crashing{}, nil
	}
	chatty := func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
		log.Info("hello from the plugin", "pid", os.Getpid())
		log.Debug("debug detail from the plugin")
		return file.New(section)
	}
	return append(builtin.Backends(),
		plugins.Backend{Name: "crash", Version: "1", New: crash},
		plugins.Backend{Name: "chatty", Version: "1", Options: file.OptionSchema(), New: chatty},
	)
}

// crashing dies in the middle of any call, like a backend with a fatal bug.
type crashing struct{ registry.Registry }

func (crashing) Register(context.Context, registry.Instance) error { os.Exit(3); return nil }
func (crashing) Close() error                                      { return nil }

func newHost(t *testing.T, log hclog.Logger) *host.Host {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})
	}
	return &host.Host{Builtins: testBackends(), Executable: exe, Logger: log, StartTimeout: 5 * time.Second}
}

// openFile starts the file backend in a subprocess on a fresh registry file.
func openFile(t *testing.T, h *host.Host, name string) *host.Client {
	t.Helper()
	c, err := plugins.StartNamed(h, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	section := map[string]any{"path": filepath.Join(t.TempDir(), "registry.json")}
	if err := c.Configure(context.Background(), section); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformanceFileThroughPlugin(t *testing.T) {
	h := newHost(t, nil)
	registrytest.Run(t, func(t *testing.T) registry.Registry { return openFile(t, h, "file") },
		registrytest.Options{Name: "file-plugin", TTL: true, Watch: true, MinTTL: time.Second})
}

func TestConformanceExampleExternalBackend(t *testing.T) {
	bin := testutil.Build(t, "./examples/sdctl-backend-memory", "sdctl-backend-memory")
	h := newHost(t, nil)
	h.Dirs = []string{filepath.Dir(bin)}
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		c, err := plugins.StartNamed(h, "memory")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.Candidate.Builtin || c.Protocol != plugins.ProtocolVersion {
			t.Fatalf("candidate %+v protocol %d, want external protocol %d", c.Candidate, c.Protocol, plugins.ProtocolVersion)
		}
		if err := c.Configure(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return c
	}, registrytest.Options{Name: "memory", TTL: true, Watch: true, MinTTL: time.Second})
}

func TestErrorsKeepTheirMeaning(t *testing.T) {
	c := openFile(t, newHost(t, nil), "file")
	ctx := context.Background()

	err := c.Deregister(ctx, "nope")
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Deregister unknown: %v, want ErrNotFound naming the ID", err)
	}
	err = c.Register(ctx, registry.Instance{ID: "x", Name: "bad name!", Address: "10.0.0.1", Port: 80})
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "name" || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register bad name: %v (%T), want a FieldError for name", err, err)
	}
	err = c.Register(ctx, registry.Instance{ID: "x", Name: "web", Address: "10.0.0.1", Port: 80,
		Checks: []registry.Check{{Kind: registry.CheckTCP, Target: "10.0.0.1:80", Interval: time.Second}}})
	if !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("Register with a check on the file backend: %v, want ErrUnsupported", err)
	}
	bad := map[string]any{"poll-interval": "soon"}
	c2, err := plugins.StartNamed(newHost(t, nil), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Configure(ctx, bad)
	if !errors.As(err, &fe) || fe.Field != "poll-interval" {
		t.Errorf("Configure bad option: %v, want a FieldError for poll-interval", err)
	}
}

func TestUnknownBackend(t *testing.T) {
	_, err := plugins.StartNamed(newHost(t, nil), "nosuch")
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "backend" || !strings.Contains(err.Error(), "file") {
		t.Fatalf("Start(nosuch) = %v, want a FieldError listing the available backends", err)
	}
}

func TestCrashingPluginIsNamed(t *testing.T) {
	h := newHost(t, nil)
	c, err := plugins.StartNamed(h, "crash")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	err = c.Register(context.Background(), registry.Instance{ID: "a", Name: "a", Address: "10.0.0.1", Port: 1})
	if !errors.Is(err, host.ErrPluginExited) || !strings.Contains(err.Error(), `"crash"`) {
		t.Fatalf("Register on a crashing plugin: %v, want ErrPluginExited naming the backend", err)
	}
}

// writeScript makes an executable shell script named sdctl-backend-NAME in dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, host.ExternalPrefix+name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A plugin that completes the handshake and then dies, or names a socket nobody listens on, has
// not started either: its first call fails with one line that names it, and nothing of
// go-plugin's is logged above debug level.
func TestPluginFailingAfterHandshake(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "nobody.sock")
	writeScript(t, dir, "gone", fmt.Sprintf("echo '1|1|unix|%s|grpc|'; echo 'fatal: lost my config' >&2; exit 3", sock))
	writeScript(t, dir, "unreachable", fmt.Sprintf("echo '1|1|unix|%s|grpc|'; exec sleep 30", sock))
	var logged testutil.SyncBuffer
	h := newHost(t, hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Warn}))
	h.Dirs = []string{dir}
	for _, tc := range []struct{ name, says string }{
		{"gone", `it exited before it was configured; its last line on stderr: "fatal: lost my config"`},
		{"unreachable", "its first calls failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := plugins.StartNamed(h, tc.name)
			if err != nil {
				t.Fatalf("the handshake failed: %v", err)
			}
			_, err = c.Info(t.Context())
			c.Close()
			if !errors.Is(err, host.ErrStartFailed) {
				t.Fatalf("Info: %v, want a start failure", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `"`+tc.name+`"`) || !strings.Contains(msg, "failed to start: "+tc.says) {
				t.Errorf("error %q: want one line naming the backend that says %q", msg, tc.says)
			}
			if out := logged.String(); out != "" {
				t.Errorf("a failed start logged above debug level:\n%s", out)
			}
		})
	}
}

func TestBrokenExternalPlugins(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "hang", "exec sleep 30")
	writeScript(t, dir, "junk", "echo 'hello, I am not a plugin'; sleep 30")
	writeScript(t, dir, "dies", "echo 'fatal: cannot start' >&2; exit 7")
	var logged testutil.SyncBuffer
	h := newHost(t, hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Warn}))
	h.Dirs = []string{dir}
	h.StartTimeout = time.Second
	for _, tc := range []struct{ name, says string }{
		{"hang", "in time (see --plugin-timeout)"},
		{"junk", "did not answer the plugin handshake (is it an sdctl backend speaking protocol 1?)"},
		{"dies", `its last line on stderr: "fatal: cannot start"`},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := plugins.StartNamed(h, name)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), `"`+name+`"`) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the backend and its path", err)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q: want one line that says %q", err, tc.says)
			}
			if out := logged.String(); out != "" {
				t.Errorf("a failed start logged above debug level:\n%s", out)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %s; want about the 1s start timeout", d)
			}
		})
	}
	t.Run("removed after discovery", func(t *testing.T) {
		path := writeScript(t, dir, "gone", "exit 0")
		cand, err := h.Find("gone")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		if _, err := plugins.Start(h, cand); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("StartCandidate of a deleted binary: %v, want an error naming %s", err, path)
		}
	})
}

func TestListShowsBuiltinsExternalsAndShadowing(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "file", "exit 0")
	writeScript(t, dir, "extra", "exit 0")
	if err := os.WriteFile(filepath.Join(dir, host.ExternalPrefix+"noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, nil)
	h.Dirs = []string{dir}
	var got []string
	for _, c := range h.List() {
		got = append(got, fmt.Sprintf("%s builtin=%t shadowed=%q", c.Name, c.Builtin, c.ShadowedBy))
	}
	var want []string
	for _, b := range testBackends() {
		want = append(want, fmt.Sprintf("%s builtin=true shadowed=%q", b.Name, ""))
	}
	want = append(want, `extra builtin=false shadowed=""`, `file builtin=false shadowed="built-in"`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("List:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPluginLogsReachTheHostLoggerAtItsLevel(t *testing.T) {
	for _, tc := range []struct {
		level     hclog.Level
		wantInfo  bool
		wantDebug bool
	}{
		{hclog.Debug, true, true},
		{hclog.Info, true, false},
		{hclog.Warn, false, false},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var buf testutil.SyncBuffer
			log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: tc.level})
			c := openFile(t, newHost(t, log), "chatty")
			c.Close()
			out := buf.String()
			if got := strings.Contains(out, "hello from the plugin"); got != tc.wantInfo {
				t.Errorf("info line present=%t, want %t; log:\n%s", got, tc.wantInfo, out)
			}
			if got := strings.Contains(out, "debug detail from the plugin"); got != tc.wantDebug {
				t.Errorf("debug line present=%t, want %t; log:\n%s", got, tc.wantDebug, out)
			}
		})
	}
}

// runHostProcess is the body of a host process that TestPluginDiesWithItsHost kills: it starts
// the file backend, prints the plugin's PID and waits to be killed.
func runHostProcess() int {
	exe, _ := os.Executable()
	h := &host.Host{Builtins: testBackends(), Executable: exe}
	c, err := plugins.StartNamed(h, "file")
	if os.Getenv("SDCTL_TEST_HOST") == "private" {
		var cand host.Candidate
		if cand, err = h.Find("file"); err == nil {
			c, err = h.StartPrivate(cand)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(c.Pid())
	time.Sleep(time.Minute)
	return 0
}

func TestPluginDiesWithItsHost(t *testing.T) {
	t.Run("go-plugin", func(t *testing.T) { testPluginDiesWithItsHost(t, "go-plugin") })
	t.Run("private", func(t *testing.T) { testPluginDiesWithItsHost(t, "private") })
}

func testPluginDiesWithItsHost(t *testing.T, how string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(exe, "-test.run=^$")
	host.Env = append(os.Environ(), "SDCTL_TEST_HOST="+how)
	var stdout bytes.Buffer
	pr, pw, _ := os.Pipe()
	host.Stdout = pw
	host.Stderr = os.Stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer host.Process.Kill()
	line := make([]byte, 32)
	n, _ := pr.Read(line)
	stdout.Write(line[:n])
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil || pid <= 0 {
		t.Fatalf("host printed %q, want the plugin PID", stdout.String())
	}
	if !alive(pid) {
		t.Fatalf("plugin %d is not running before the host is killed", pid)
	}
	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still running 5s after its host was killed with SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}
