// Package e2e runs the real sdctl binary, with its real plugin subprocesses, the way users do:
// testscript files under testdata/script, plus Go tests for what scripts express badly
// (many processes at once, killing a process and watching its children).
package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
)

func TestMain(m *testing.M) {
	code := dockertest.Main(m)
	testutil.Cleanup()
	os.Exit(code)
}

// binaries builds sdctl and the example external backend once per test process.
func binaries(t testing.TB) (sdctl, memory string) {
	return testutil.Build(t, "./cmd/sdctl", "sdctl"), testutil.Build(t, "./examples/sdctl-backend-memory", "sdctl-backend-memory")
}

// cleanEnv is the environment of a new user: a private HOME, no XDG or SDCTL overrides, and
// one backend process per command, so that no test leaves a warm backend behind (the tests of
// warm backends set their own idle timeout and runtime directory, and stop what they start).
func cleanEnv(home, binDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SDCTL_") || strings.HasPrefix(k, "XDG_") || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), noWarm)
}

// noWarm turns warm backends off in the environment of the tests' sdctl processes.
const noWarm = "SDCTL_PLUGIN_IDLE_TIMEOUT=0"

func TestScripts(t *testing.T) {
	sdctl, memory := binaries(t)
	root := testutil.ModuleRoot(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			if err := os.MkdirAll(home, 0o700); err != nil {
				return err
			}
			// Keep testscript's own variables (WORK, TMPDIR, ...) and replace the user's.
			for _, kv := range cleanEnv(home, filepath.Dir(sdctl)) {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv(k, v)
			}
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SDCTL_") || strings.HasPrefix(k, "XDG_") {
					env.Setenv(k, "")
				}
			}
			k, v, _ := strings.Cut(noWarm, "=")
			env.Setenv(k, v)
			env.Setenv("MEMORY_BACKEND", memory)
			env.Setenv("REPO", root)
			env.Setenv("SDCTL", sdctl)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			"retry":    cmdRetry,
			"sleep":    cmdSleep,
		},
	})
}

// cmdExitCode runs `exitcode N PROGRAM ARGS...` and checks the exit code is exactly N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	want, prog := numberAndProgram(ts, neg, "exitcode N", args)
	got := ranCode(ts, ts.Exec(prog[0], prog[1:]...))
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", strings.Join(prog, " "), got, want)
	}
}

// numberAndProgram reads the arguments of a command used as `NAME NUMBER PROGRAM [ARGS...]`
// (usage is "NAME NUMBER"): the number, and the program with its arguments.
func numberAndProgram(ts *testscript.TestScript, neg bool, usage string, args []string) (int, []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: %s PROGRAM [ARGS...]", usage)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		name, _, _ := strings.Cut(usage, " ")
		ts.Fatalf("%s: %q is not a number", name, args[0])
	}
	return n, args[1:]
}

// ranCode is exitOf(err) for a command that must have run: one that did not (or could not be
// waited for) fails tb with err.
func ranCode(tb interface{ Fatalf(string, ...any) }, err error) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("%v", err)
	}
	return exitOf(err)
}

// cmdRetry runs `retry SECONDS PROGRAM ARGS...` until it succeeds or SECONDS pass: for
// conditions that become true asynchronously, without a fixed sleep.
func cmdRetry(ts *testscript.TestScript, neg bool, args []string) {
	secs, prog := numberAndProgram(ts, neg, "retry SECONDS", args)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		err := ts.Exec(prog[0], prog[1:]...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s still failing after %ds: %v", strings.Join(prog, " "), secs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmdSleep runs `sleep DURATION`, for the few places where a background process must get going.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("sleep: %v", err)
	}
	time.Sleep(d)
}

// run runs sdctl with env and returns stdout, stderr and the exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runIn(t, "", "", env, args...)
}

func userEnv(t *testing.T) []string {
	sdctl, _ := binaries(t)
	home := t.TempDir()
	return cleanEnv(home, filepath.Dir(sdctl))
}

// TestConcurrentRegisters starts 50 sdctl processes at once on one registry file: all must
// succeed and all 50 instances must be there.
func TestConcurrentRegisters(t *testing.T) {
	env := userEnv(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, stderr, code := run(t, env, "register", fmt.Sprintf("svc%d", i%5), fmt.Sprintf("10.0.0.%d:%d", i, 3000+i))
			if code != 0 || strings.TrimSpace(out) == "" {
				errs <- fmt.Sprintf("register %d: exit %d: %s", i, code, stderr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	out, stderr, code := run(t, env, "catalog", "-o", "json")
	if code != 0 {
		t.Fatalf("catalog: exit %d: %s", code, stderr)
	}
	var services []struct {
		Name      string `json:"name"`
		Instances int    `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &services); err != nil {
		t.Fatalf("catalog -o json: %v\n%s", err, out)
	}
	total := 0
	for _, s := range services {
		total += s.Instances
	}
	if total != n || len(services) != 5 {
		t.Fatalf("catalog has %d instances in %d services, want %d in 5:\n%s", total, len(services), n, out)
	}
}

// TestPluginDiesWithKilledHost kills a running `register --keepalive` with SIGKILL and checks
// that its backend plugin process goes away too.
func TestPluginDiesWithKilledHost(t *testing.T) {
	cmd := startKeepalive(t, userEnv(t), "10s")
	plugin := childPIDs(cmd.Process.Pid)
	if len(plugin) != 1 {
		t.Fatalf("sdctl %d has children %v, want exactly one plugin process", cmd.Process.Pid, plugin)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(plugin[0]) {
		if time.Now().After(deadline) {
			syscall.Kill(plugin[0], syscall.SIGKILL)
			t.Fatalf("plugin %d outlived its SIGKILLed host by 5s", plugin[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childPIDs lists the children of pid from /proc.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses; a zombie has exited.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// TestKeepaliveDeregistersOnSIGTERM is what `sdctl register --ttl 10s --keepalive web :3000 &`
// followed by `kill %1` does in a script.
func TestKeepaliveDeregistersOnSIGTERM(t *testing.T) {
	env := userEnv(t)
	cmd := startKeepalive(t, env, "2s")
	if out, _, code := run(t, env, "resolve", "web"); code != 0 || out != "127.0.0.1:3000\n" {
		t.Fatalf("resolve while kept alive: %q exit %d", out, code)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("keepalive after SIGTERM: %v, want exit 0", err)
	}
	if _, stderr, code := run(t, env, "resolve", "web"); code != 3 {
		t.Fatalf("resolve after SIGTERM: exit %d (%s), want 3: the instance must be gone", code, stderr)
	}
}

// startKeepalive starts `sdctl register --ttl TTL --keepalive web 127.0.0.1:3000` and returns
// once it has printed the ID, that is once the plugin is up and the instance registered.
// TestKilledKeepaliveIsReaped: a --keepalive killed with SIGKILL cannot deregister; with
// --check-deregister-after its instance turns critical when the TTL runs out and is removed once
// it has been critical that long. Without it, the instance stays, critical, as in Consul.
func TestKilledKeepaliveIsReaped(t *testing.T) {
	t.Parallel()
	env := userEnv(t)
	reaped := startKeepalive(t, env, "1s", "--check-deregister-after", "1s")
	if err := reaped.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = reaped.Wait()
	eventually(t, 15*time.Second, func() error {
		out, stderr, code := run(t, env, "catalog", "web")
		if code != 3 {
			return fmt.Errorf("catalog web: exit %d, want 3 once reaped\nstdout: %s\nstderr: %s", code, out, stderr)
		}
		return nil
	})

	kept := startKeepalive(t, env, "1s")
	if err := kept.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = kept.Wait()
	eventually(t, 15*time.Second, func() error {
		if out, _, code := run(t, env, "catalog", "web"); code != 0 || !strings.Contains(out, "\tcritical\t") {
			return fmt.Errorf("catalog web: exit %d %q, want the instance listed as critical", code, out)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // well past TTL and any deregister-after: it must still be there
	if out, _, code := run(t, env, "catalog", "web"); code != 0 || !strings.Contains(out, "\tcritical\t") {
		t.Errorf("without --check-deregister-after the instance must stay, critical: exit %d %q", code, out)
	}
}

func startKeepalive(t *testing.T, env []string, ttl string, extra ...string) *exec.Cmd {
	t.Helper()
	sdctl, _ := binaries(t)
	cmd := exec.Command(sdctl, append([]string{"register", "--ttl", ttl, "--keepalive", "web", "127.0.0.1:3000"}, extra...)...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	buf := make([]byte, 64)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatalf("reading the registered ID: %v", err)
	}
	return cmd
}
