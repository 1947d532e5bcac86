package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestDemoKeepsToItsOwnRegistry runs the script of `make demo` for a user whose config file
// sends sdctl to a Consul agent and who has a registry file of their own: the demo must still
// run, on a temporary registry, and leave both alone.
func TestDemoKeepsToItsOwnRegistry(t *testing.T) {
	t.Parallel()
	sdctl, _ := binaries(t)
	home := t.TempDir()
	env := withEnv(cleanEnv(home, filepath.Dir(sdctl)), "SDCTL="+sdctl)
	mine := filepath.Join(home, "mine.json")
	mustRun(t, withEnv(env, "SDCTL_FILE_PATH="+mine), "register", "web", "10.9.9.9:3000")
	before, err := os.ReadFile(mine)
	if err != nil {
		t.Fatal(err)
	}
	config := "backend: consul\nconsul: {address: '" + registrytest.ClosedAddr(t) + "'}\nfile: {path: '" + mine + "'}\n"
	if err := os.MkdirAll(filepath.Join(home, ".config", "sdctl"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "sdctl", "config.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("bash", filepath.Join(testutil.ModuleRoot(t), "scripts", "demo.sh"))
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/demo.sh: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"web-127.0.0.1-3000\n", "http://127.0.0.1:300", "exit code 3\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("scripts/demo.sh printed no %q:\n%s", want, stdout.String())
		}
	}
	if after, err := os.ReadFile(mine); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the demo changed the user's registry file (%v):\nbefore: %s\nafter:  %s", err, before, after)
	}
}
