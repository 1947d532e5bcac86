package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
)

// warmEnv is the environment of a user whose backends stay warm, with a runtime and state
// directory of the test's own. The warm backends are stopped when the test ends, and the test
// fails if one is left.
func warmEnv(t *testing.T, env []string) []string {
	t.Helper()
	// Short: a Unix socket path has at most 103 bytes.
	runtime, err := os.MkdirTemp("", "sdw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runtime) })
	env = withEnv(env, "XDG_RUNTIME_DIR="+runtime, "XDG_STATE_HOME="+filepath.Join(t.TempDir(), "state"), "SDCTL_PLUGIN_IDLE_TIMEOUT=1m")
	t.Cleanup(func() {
		mustRun(t, env, "backend", "stop")
		if pids := warmPids(t, env); len(pids) > 0 {
			t.Errorf("warm backends left after 'backend stop': %v", pids)
		}
	})
	return env
}

// warmPids returns the warm backend processes that 'backend list' shows, by backend.
func warmPids(t *testing.T, env []string) map[string][]int {
	t.Helper()
	var rows []struct {
		Name string `json:"name"`
		Warm []int  `json:"warm"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, env, "backend", "list", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, r := range rows {
		if len(r.Warm) > 0 {
			out[r.Name] = r.Warm
		}
	}
	return out
}

func TestWarmConcurrentColdStartStartsOneBackend(t *testing.T) {
	env := warmEnv(t, withEnv(userEnv(t), "SDCTL_FILE_PATH="+filepath.Join(t.TempDir(), "r.json")))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, stderr, code := run(t, env, "catalog"); code != 0 {
				errs <- fmt.Sprintf("exit %d: %s", code, stderr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if pids := warmPids(t, env); len(pids["file"]) != 1 {
		t.Fatalf("after %d concurrent commands: warm backends %v, want exactly one", n, pids)
	}
}

// A script that reads sdctl's output to its end must not wait for the warm backend that the
// command left running: the backend holds none of sdctl's stdout or stderr.
func TestWarmBackendHoldsNoOutputPipe(t *testing.T) {
	env := warmEnv(t, withEnv(userEnv(t), "SDCTL_FILE_PATH="+filepath.Join(t.TempDir(), "r.json")))
	sdctl, _ := binaries(t)
	cmd := exec.Command(sdctl, "register", "web", "10.0.0.1:80")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr // pipes: Wait returns when every writer closed them
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("register: %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sdctl's output pipes stayed open after it exited: the warm backend inherited them")
	}
	if pids := warmPids(t, env); len(pids["file"]) != 1 {
		t.Fatalf("warm backends %v, want one", pids)
	}
}

func TestWarmBackendKilledBetweenCommands(t *testing.T) {
	env := warmEnv(t, withEnv(userEnv(t), "SDCTL_FILE_PATH="+filepath.Join(t.TempDir(), "r.json")))
	mustRun(t, env, "register", "web", "10.0.0.1:80")
	old := warmPids(t, env)["file"]
	if len(old) != 1 {
		t.Fatalf("warm backends %v, want one", old)
	}
	if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(old[0], 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("backend %d survived SIGKILL", old[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := mustRun(t, env, "resolve", "web"); strings.TrimSpace(out) != "10.0.0.1:80" {
		t.Fatalf("resolve after kill -9 of the backend: %q", out)
	}
	if now := warmPids(t, env)["file"]; len(now) != 1 || now[0] == old[0] {
		t.Fatalf("warm backends after kill -9: %v (killed %d)", now, old[0])
	}
}

// A changed token means another warm backend, and the token is on disk nowhere.
func TestWarmBackendPerToken(t *testing.T) {
	a := consultest.StartDev(t)
	base := warmEnv(t, withEnv(serverEnv(t, "SDCTL_BACKEND=consul"), a.Env()...))
	const tokenA, tokenB = "warm-token-aaaa-1111", "warm-token-bbbb-2222"
	mustRun(t, withEnv(base, "CONSUL_HTTP_TOKEN="+tokenA), "register", "web", "10.0.0.1:80")
	mustRun(t, withEnv(base, "CONSUL_HTTP_TOKEN="+tokenA), "resolve", "web")
	if pids := warmPids(t, base)["consul"]; len(pids) != 1 {
		t.Fatalf("one token: warm consul backends %v, want one", pids)
	}
	mustRun(t, withEnv(base, "CONSUL_HTTP_TOKEN="+tokenB), "resolve", "web")
	if pids := warmPids(t, base)["consul"]; len(pids) != 2 {
		t.Fatalf("two tokens: warm consul backends %v, want two", pids)
	}
	for _, key := range []string{"XDG_RUNTIME_DIR", "XDG_STATE_HOME"} {
		dir := ""
		for _, kv := range base {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				dir = v
			}
		}
		_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err != nil || strings.Contains(path, "token") {
				t.Errorf("%s: %v", path, err)
				return nil
			}
			if info.Mode().IsRegular() {
				if data, _ := os.ReadFile(path); bytes.Contains(data, []byte("warm-token")) {
					t.Errorf("%s holds a token in clear", path)
				}
			}
			return nil
		})
	}
}
