//go:build linux

package plugins_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/sdctl/sdctl/plugins"
)

// TestStaleSocketDirsAreRemoved kills a host with SIGKILL, which leaves its socket directory
// behind, and checks that the next host removes it, but not the directory of a host that
// still runs. Not parallel: it sets TMPDIR for the whole process.
func TestStaleSocketDirsAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(exe, "-test.run=^$")
	host.Env = append(os.Environ(), "SDCTL_TEST_HOST=1")
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	host.Stderr = os.Stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Process.Kill()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the host did not start its plugin: %v", err)
	}
	_ = host.Process.Signal(syscall.SIGKILL)
	_ = host.Wait()
	left := socketDirs(t, tmp)
	if len(left) != 1 {
		t.Fatalf("after SIGKILL: socket directories %q, want the dead host's one", left)
	}
	stale := left[0]

	// A live host's directory: its lock is held.
	live := filepath.Join(tmp, plugins.SocketDirPrefix+"live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := flock.New(filepath.Join(live, ".host.lock"))
	if ok, err := lock.TryLock(); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer lock.Close()
	// Both are older than a host needs to lock a new directory.
	old := time.Now().Add(-2 * time.Minute)
	for _, d := range []string{stale, live} {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}

	c := openFile(t, newHost(t, nil), "file")
	now := socketDirs(t, tmp)
	if len(now) != 2 || !slices.Contains(now, live) || slices.Contains(now, stale) {
		t.Errorf("with a new host running: %q; want %s and the new host's, without %s", now, live, stale)
	}
	c.Close()
	if now := socketDirs(t, tmp); len(now) != 1 || now[0] != live {
		t.Errorf("after Close: %q, want only %s", now, live)
	}
}

func socketDirs(t *testing.T, tmp string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(tmp, plugins.SocketDirPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return matches
}
