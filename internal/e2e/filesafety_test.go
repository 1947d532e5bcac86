//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TestFileSafetyExitCodes runs the built binary against what the file backend must not
// destroy or hang on: each case ends with its documented exit code and one line on stderr, and
// leaves the path as it was.
func TestFileSafetyExitCodes(t *testing.T) {
	env := userEnv(t)
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero")
	testutil.MakeCharDevice(t, zero, 1, 5)
	null := filepath.Join(dir, "null")
	testutil.MakeCharDevice(t, null, 1, 3)
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	full := testutil.MountTmpfs(t, 64<<10)
	fullPath := filepath.Join(full, "registry.json")
	if _, stderr, code := run(t, append(env, "SDCTL_FILE_PATH="+fullPath), "register", "web", "10.0.0.1:1"); code != 0 {
		t.Fatalf("first register on the tmpfs: %d %s", code, stderr)
	}
	before, _ := os.ReadFile(fullPath)
	if f, err := os.Create(filepath.Join(full, "filler")); err == nil {
		for err == nil {
			_, err = f.Write(make([]byte, 4096))
		}
		f.Close()
	}
	batch := filepath.Join(dir, "big.yaml")
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, "- {name: web, address: 10.0.1.%d, port: 80, meta: {pad: %s}}\n", i, strings.Repeat("x", 300))
	}
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"RegistryIsNullDevice", []string{"SDCTL_FILE_PATH=" + null}, []string{"register", "web", "10.0.0.1:1"}, 2, "is a character device"},
		{"RegistryIsZeroDevice", []string{"SDCTL_FILE_PATH=" + zero}, []string{"catalog"}, 2, "is a character device"},
		{"RegistryIsEmpty", []string{"SDCTL_FILE_PATH=" + empty}, []string{"register", "web", "10.0.0.1:1"}, 1, "the file is empty"},
		{"BatchFileIsZeroDevice", nil, []string{"register", "-f", zero}, 2, "is a character device"},
		{"ConfigFileIsZeroDevice", nil, []string{"--config", zero, "catalog"}, 2, "is a character device"},
		{"DiskFull", []string{"SDCTL_FILE_PATH=" + fullPath}, []string{"register", "-f", batch}, 1, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, append(append([]string{}, env...), tc.env...), tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.says) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want %d and one line saying %q", code, stderr, tc.code, tc.says)
			}
		})
	}
	for _, p := range []string{zero, null} {
		if info, err := os.Stat(p); err != nil || info.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("%s is no longer a device: %v %v", p, info.Mode(), err)
		}
	}
	if data, _ := os.ReadFile(empty); len(data) != 0 {
		t.Errorf("the empty registry was overwritten")
	}
	if after, _ := os.ReadFile(fullPath); !bytes.Equal(before, after) {
		t.Errorf("the registry on the full disk changed")
	}
}

// TestWarmBackendFollowsSymlink changes the registry path's symbolic link between commands
// served by one warm backend: each command reads and writes where the link leads at that moment,
// the link stays a link, and a broken one is refused without creating anything.
func TestWarmBackendFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "registry.json")
	env := warmEnv(t, withEnv(userEnv(t), "SDCTL_FILE_PATH="+link))
	mustRun(t, env, "catalog") // starts the warm backend while the path does not exist
	relink := func(target string) {
		t.Helper()
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a.json", "b.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"format": "sdctl-file-registry/1"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	relink("a.json")
	mustRun(t, env, "register", "web", "10.0.0.1:80")
	relink("b.json")
	mustRun(t, env, "register", "web", "10.0.0.2:80")
	if out := mustRun(t, env, "resolve", "web", "--all"); out != "10.0.0.2:80\n" {
		t.Errorf("resolve through the changed link: %q, want b.json's one instance", out)
	}
	for name, want := range map[string]string{"a.json": "10.0.0.1", "b.json": "10.0.0.2"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		if strings.Count(string(data), `"address"`) != 1 || !strings.Contains(string(data), want) {
			t.Errorf("%s holds %s, want only %s", name, data, want)
		}
	}
	relink(filepath.Join("gone", "registry.json"))
	if _, stderr, code := run(t, env, "register", "web", "10.0.0.3:80"); code != 2 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("register through a dangling link: exit %d, %q; want 2", code, stderr)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("the dangling link's target directory was created: %v", err)
	}
	if pids := warmPids(t, env); len(pids["file"]) != 1 {
		t.Errorf("warm backends %v, want the one that served every command", pids)
	}
}

// TestRegisterLargeBatch registers 10,000 instances with one `register -f` (one plugin call
// and one rewrite of the file) and finds them all.
func TestRegisterLargeBatch(t *testing.T) {
	env := userEnv(t)
	batch := filepath.Join(t.TempDir(), "batch.json")
	var b strings.Builder
	b.WriteString("[\n")
	const n = 10000
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"name":"svc-%d","address":"10.%d.%d.%d","port":8080}`, i%50, i>>16&255, i>>8&255, i&255)
	}
	b.WriteString("]\n")
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, env, "register", "-f", batch)
	if code != 0 || strings.Count(stdout, "\n") != n {
		t.Fatalf("register -f: exit %d, %d IDs printed, stderr %s", code, strings.Count(stdout, "\n"), stderr)
	}
	stdout, stderr, code = run(t, env, "catalog", "-o", "json")
	if code != 0 || strings.Count(stdout, `"instances": 200`) != 50 {
		t.Fatalf("catalog after the batch: exit %d %s %.300s", code, stderr, stdout)
	}
}
