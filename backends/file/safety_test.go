//go:build linux

package file

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sdctl/sdctl/fsutil"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/registry"
)

// TestOnlyRegularFiles points the backend at things that are not regular files: each is refused
// by Open with one line naming the path and what it is, and is still there, unchanged, after a
// write was attempted through a backend opened before the swap.
func TestOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	type node struct {
		name, says string
		make       func(t *testing.T, path string)
	}
	nodes := []node{
		{"ZeroDevice", "is a character device", func(t *testing.T, p string) { testutil.MakeCharDevice(t, p, 1, 5) }},
		{"NullDevice", "is a character device", func(t *testing.T, p string) { testutil.MakeCharDevice(t, p, 1, 3) }},
		{"FIFO", "is a FIFO", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"Directory", "is a directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, n := range nodes {
		t.Run(n.name, func(t *testing.T) {
			path := filepath.Join(dir, n.name)
			n.make(t, path)
			before, _ := os.Lstat(path)
			_, err := Open(Options{Path: path})
			if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), n.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open(%s) = %v; want one line naming the path and saying %q", n.name, err, n.says)
			}

			// The same node appearing after Open (a mount, a person's mistake).
			swapped := filepath.Join(dir, n.name+"-swapped.json")
			b, err := Open(Options{Path: swapped})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(swapped); err != nil {
				t.Fatal(err)
			}
			n.make(t, swapped)
			err = b.Register(t.Context(), webInstance("web-2", 2))
			if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), n.says) {
				t.Errorf("Register onto a %s: %v", n.name, err)
			}
			if _, err := b.Instances(t.Context(), registry.Query{Name: "web"}); !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("Instances from a %s: %v", n.name, err)
			}
			for _, p := range []string{path, swapped} {
				after, err := os.Lstat(p)
				if err != nil || after.Mode() != before.Mode() {
					t.Errorf("%s changed: %v (%v), was %v", p, after.Mode(), err, before.Mode())
				}
			}
		})
	}

	t.Run("LockFileIsAFIFO", func(t *testing.T) {
		path := filepath.Join(dir, "lock-fifo.json")
		if err := syscall.Mkfifo(path+".lock", 0o600); err != nil {
			t.Fatal(err)
		}
		registerRefused(t, path, "is a FIFO")
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the registry was created: %v", err)
		}
	})

	t.Run("LockFileIsADanglingLink", func(t *testing.T) {
		path := filepath.Join(dir, "lock-link.json")
		planted := filepath.Join(dir, "planted")
		if err := os.Symlink(planted, path+".lock"); err != nil {
			t.Fatal(err)
		}
		registerRefused(t, path, "symbolic link")
		for _, p := range []string{path, planted} {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created: %v", p, err)
			}
		}
	})
}

// registerRefused opens the registry at path and checks that Register refuses it as
// registry.ErrInvalid with an error that contains want.
func registerRefused(t *testing.T, path, want string) {
	t.Helper()
	b, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), webInstance("web-1", 1)); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("Register: %v, want ErrInvalid (%q)", err, want)
	}
}

func TestDanglingSymlinkIsRefused(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "registry.json")
	if err := os.Symlink(filepath.Join(dir, "elsewhere", "registry.json"), link); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Path: link})
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open of a dangling symlink: %v", err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link changed: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target directory was created: %v", err)
	}
}

// A backend outlives changes to its path (a warm backend serves many commands): a symbolic link
// made, changed or broken after Open is followed by the next call, never replaced.
func TestSymlinkFollowedOnEveryCall(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "registry.json")
	b, err := Open(Options{Path: link})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	isLink := func(when string) {
		t.Helper()
		info, err := os.Lstat(link)
		if err != nil {
			t.Fatalf("%s: the link is gone: %v", when, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("%s: the link was replaced by %s", when, fsutil.Kind(info.Mode()))
		}
	}

	a := filepath.Join(dir, "a.json")
	if err := os.WriteFile(a, []byte(`{"format": "sdctl-file-registry/1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.json", link); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	isLink("link made after Open")
	if doc := readDoc(t, a); len(doc.Instances) != 1 {
		t.Fatalf("the link's target holds %d instances, want 1", len(doc.Instances))
	}

	other := filepath.Join(dir, "b.json")
	if err := os.WriteFile(other, []byte(`{"format": "sdctl-file-registry/1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b.json", link); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(got) != 0 {
		t.Fatalf("Instances through the changed link: %v %v, want the new target's none", got, err)
	}
	if err := b.Register(ctx, webInstance("web-2", 2)); err != nil {
		t.Fatal(err)
	}
	isLink("link changed")
	if doc := readDoc(t, other); len(doc.Instances) != 1 || doc.Instances[0].ID != "web-2" {
		t.Fatalf("the new target holds %+v, want web-2", doc.Instances)
	}
	if doc := readDoc(t, a); len(doc.Instances) != 1 {
		t.Fatalf("the old target changed: %d instances", len(doc.Instances))
	}

	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("elsewhere", "registry.json"), link); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		err  error
	}{
		{"Register", b.Register(ctx, webInstance("web-3", 3))},
		{"Deregister", b.Deregister(ctx, "web-2")},
		{"Instances", func() error { _, err := b.Instances(ctx, registry.Query{Name: "web"}); return err }()},
		{"ClusterStatus", func() error { _, err := b.ClusterStatus(ctx); return err }()},
	} {
		if !errors.Is(call.err, registry.ErrInvalid) || !strings.Contains(call.err.Error(), "does not exist") {
			t.Errorf("%s through a dangling link: %v, want it refused", call.name, call.err)
		}
	}
	isLink("link broken")
	if _, err := os.Stat(filepath.Join(dir, "elsewhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target directory was created: %v", err)
	}
}

func TestTooLargeIsCorrupt(t *testing.T) {
	b := openTemp(t)
	// A sparse file: one byte over the cap costs no disk.
	if err := os.WriteFile(b.Path(), []byte(`{"format": "sdctl-file-registry/1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(b.Path(), fsutil.MaxRegistrySize+1); err != nil {
		t.Fatal(err)
	}
	_, err := b.Instances(t.Context(), registry.Query{Name: "web"})
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Fatalf("Instances of a file over the cap: %v", err)
	}
	if err := b.Register(t.Context(), webInstance("web-1", 1)); !errors.As(err, &ce) {
		t.Fatalf("Register over a file over the cap: %v", err)
	}
	if info, _ := os.Stat(b.Path()); info.Size() != fsutil.MaxRegistrySize+1 {
		t.Errorf("the file changed size to %d", info.Size())
	}
}

// TestNewFilesHonourUmask is not parallel: the umask belongs to the whole process.
func TestNewFilesHonourUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  fs.FileMode
	}{{0o022, 0o644}, {0o002, 0o664}, {0o077, 0o600}} {
		old := syscall.Umask(tc.umask)
		b := openTemp(t)
		err := b.Register(t.Context(), webInstance("web-1", 1))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{b.Path(), b.Path() + ".lock"} {
			if info, err := os.Stat(p); err != nil || info.Mode().Perm() != tc.want {
				t.Errorf("umask %03o: %s has mode %v (%v), want %v", tc.umask, filepath.Base(p), info.Mode().Perm(), err, tc.want)
			}
		}
	}
}

// TestRewriteKeepsOwnerGroupAndMode has root rewrite a registry that belongs to someone else.
func TestRewriteKeepsOwnerGroupAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipUnlessRequired(t, "giving a file to another user needs root")
	}
	const uid, gid = 4101, 4102
	b := openTemp(t)
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(b.Path(), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(b.Path(), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), webInstance("web-2", 2)); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid || info.Mode().Perm() != 0o640 {
		t.Errorf("after root's rewrite: %d:%d %v, want %d:%d 0640", st.Uid, st.Gid, info.Mode().Perm(), uid, gid)
	}
	if doc := readDoc(t, b.Path()); len(doc.Instances) != 2 {
		t.Errorf("the registry holds %d instances", len(doc.Instances))
	}
}

// TestDiskFull fills a small tmpfs: the write fails with an error that is not "unavailable"
// (exit code 1, not 4), says the disk is full, and the previous document is intact.
func TestDiskFull(t *testing.T) {
	dir := testutil.MountTmpfs(t, 64<<10)
	b, err := Open(Options{Path: filepath.Join(dir, "registry.json")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(b.Path())
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 4096))
	}
	_ = filler.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	pad := map[string]string{}
	for i := range 20 {
		pad[fmt.Sprintf("pad%d", i)] = strings.Repeat("x", 400)
	}
	err = b.Register(t.Context(), registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 2, Meta: pad})
	if err == nil || errors.Is(err, registry.ErrUnavailable) || errors.Is(err, registry.ErrPermissionDenied) ||
		!errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), b.Path()) {
		t.Fatalf("Register on a full disk: %v", err)
	}
	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("the registry changed")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".registry.json.tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestGroupSharedRegistry follows the recipe of docs/backends/file.md with two real users of
// one group: a setgid directory of the group and a umask that lets the group write. Both
// register, in turn, and the registry stays the group's. In a sticky directory like /tmp the
// second user is refused with a message that says why.
func TestGroupSharedRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipUnlessRequired(t, "running processes as two other users needs root")
	}
	const group = 4200
	users := []syscall.Credential{{Uid: 4201, Gid: 4201, Groups: []uint32{group}}, {Uid: 4202, Gid: 4202, Groups: []uint32{group}}}
	base, err := os.MkdirTemp("", "sdctl-share-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copyTestBinary(t, base)
	umask := "002"
	register := func(t *testing.T, user syscall.Credential, path, prefix string) (string, error) {
		t.Helper()
		cmd := roleCommand(t, "writer", "WRITER_PATH="+path, "WRITER_COUNT=1", "WRITER_PREFIX="+prefix, "WRITER_UMASK="+umask)
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &user}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		return strings.TrimSpace(stderr.String()), err
	}

	t.Run("SetgidGroupDirectory", func(t *testing.T) {
		dir := filepath.Join(base, "team")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 0, group); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o2770|fs.ModeSetgid); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "registry.json")
		for i, user := range []syscall.Credential{users[0], users[1], users[0]} {
			if msg, err := register(t, user, path, fmt.Sprintf("u%d-%d", user.Uid, i)); err != nil {
				t.Fatalf("uid %d: %v: %s", user.Uid, err, msg)
			}
		}
		if doc := readDoc(t, path); len(doc.Instances) != 3 {
			t.Errorf("the shared registry holds %d instances, want 3", len(doc.Instances))
		}
		for _, p := range []string{path, path + ".lock"} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := info.Sys().(*syscall.Stat_t); st.Gid != group || info.Mode().Perm() != 0o664 {
				t.Errorf("%s is %d:%d %v; want group %d, mode 0664 (umask 002)", filepath.Base(p), st.Uid, st.Gid, info.Mode().Perm(), group)
			}
		}
	})

	// In a sticky directory the second user is refused with a hint, whether or not the file's
	// mode lets others write it (umask 000: then it is the group that cannot be kept).
	for _, mask := range []string{"002", "000"} {
		t.Run("StickyDirectory/umask"+mask, func(t *testing.T) {
			umask = mask
			t.Cleanup(func() { umask = "002" })
			dir := filepath.Join(base, "tmp"+mask)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "registry.json")
			if msg, err := register(t, users[0], path, "first"); err != nil {
				t.Fatalf("first user: %v: %s", err, msg)
			}
			before, _ := os.ReadFile(path)
			msg, err := register(t, users[1], path, "second")
			if err == nil || !strings.Contains(msg, "sticky") || !strings.Contains(msg, "permission denied") {
				t.Errorf("second user in a sticky directory: %v: %s", err, msg)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused write changed the registry")
			}
		})
	}
}
