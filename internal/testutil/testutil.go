// Package testutil holds helpers shared by sdctl's tests: building the real binaries, and
// skipping tests whose dependencies are missing unless CI demands them.
package testutil

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sdctl/sdctl/internal/harness"
)

// RequireAllEnv, when set to 1 (as .ci/run does), turns every Skip for a missing dependency into
// a failure, so a CI run without Docker or a server cannot pass by skipping.
const RequireAllEnv = "SDCTL_TEST_REQUIRE_ALL"

// SkipUnlessRequired skips t with reason, or fails it when RequireAllEnv is set.
func SkipUnlessRequired(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("%s (%s=1, so this is a failure, not a skip)", reason, RequireAllEnv)
	}
	t.Skip(reason)
}

// Server is a server process of internal/harness: a Consul agent or an etcd member.
type Server interface {
	Kill()
	LogTail(n int) string
}

// KillAtEnd has t.Cleanup kill each server, and log the last logLines lines of its output when
// the test failed.
func KillAtEnd(t testing.TB, logLines int, servers ...Server) {
	for _, s := range servers {
		t.Cleanup(func() {
			s.Kill()
			if t.Failed() {
				t.Log(s.LogTail(logLines))
			}
		})
	}
}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// BundledCommands are the programs that ship beside sdctl as their own executables (the
// bundled backends, sdctl-watch and sdctl-plugin-host). Build puts them next to the sdctl
// binary, where sdctl looks for them.
var BundledCommands = []string{"./cmd/sdctl-backend-consul", "./cmd/sdctl-backend-etcd", "./cmd/sdctl-watch", "./cmd/sdctl-plugin-host"}

// Build compiles the main package pkg (a path relative to the module root, like
// "./cmd/sdctl") once per test process and returns the binary's path. name is the file name.
// Building "./cmd/sdctl" also builds the bundled backends (BundledCommands) into the same
// directory, as a release ships them.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := built[pkg]; ok {
		return path
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "sdctl-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	out := filepath.Join(buildDir, name)
	goBuild(t, "-o", out, pkg)
	if pkg == "./cmd/sdctl" {
		// One go build for all of them: it compiles the packages they share once.
		goBuild(t, append([]string{"-o", buildDir + string(filepath.Separator)}, BundledCommands...)...)
	}
	built[pkg] = out
	return out
}

func goBuild(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
}

// Cleanup removes what Build made; call it from TestMain after m.Run.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// HTTPGet GETs url and returns the status code and the body; a request that fails fails t.
func HTTPGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// ModuleRoot is the directory holding go.mod (see harness.ModuleRoot).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
