//go:build unix

package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/registry"
)

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		testPermissionDeniedAsOtherUser(t)
		return
	}
	b := openTemp(t)
	ctx := t.Context()
	if err := b.Register(ctx, webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(b.Path())

	t.Run("UnreadableFile", func(t *testing.T) {
		if err := os.Chmod(b.Path(), 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(b.Path(), 0o600)
		_, err := b.Instances(ctx, registry.Query{Name: "web"})
		if !errors.Is(err, registry.ErrPermissionDenied) || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), b.Path()) {
			t.Errorf("Instances on an unreadable file: %v", err)
		}
		if err := b.Register(ctx, webInstance("web-2", 2)); !errors.Is(err, registry.ErrPermissionDenied) {
			t.Errorf("Register on an unreadable file: %v", err)
		}
	})

	t.Run("ReadOnlyFile", func(t *testing.T) {
		if err := os.Chmod(b.Path(), 0o400); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(b.Path(), 0o600)
		if err := b.Register(ctx, webInstance("web-2", 2)); !errors.Is(err, registry.ErrPermissionDenied) {
			t.Errorf("Register on a read-only file: %v", err)
		}
		checkStatusHealth(t, b, healthReadOnly, "false")
	})

	t.Run("ReadOnlyDirectory", func(t *testing.T) {
		dir := filepath.Dir(b.Path())
		if err := os.Remove(b.Path() + ".lock"); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		if _, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil {
			t.Errorf("Instances in a read-only directory: %v", err)
		}
		err := b.Register(ctx, webInstance("web-2", 2))
		if !errors.Is(err, registry.ErrPermissionDenied) || !strings.Contains(err.Error(), ".lock") {
			t.Errorf("Register in a read-only directory: %v", err)
		}
		checkStatusHealth(t, b, healthReadOnly, "false")
	})

	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("a failed write changed the file")
	}
}

// copyTestBinary copies this test binary into dir (mode 0755), where processes of other users
// can run it.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "probe.test")
	self, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, self); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func checkStatusHealth(t *testing.T, b *Backend, health, writable string) {
	t.Helper()
	st, err := b.ClusterStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Members[0]; m.Health != health || m.Details["writable"] != writable {
		t.Errorf("ClusterStatus: health %q writable %q, want %q %q (notes %q)", m.Health, m.Details["writable"], health, writable, st.Notes)
	}
}

// testPermissionDeniedAsOtherUser runs the probe role as nobody, since permissions do not
// stop root.
func testPermissionDeniedAsOtherUser(t *testing.T) {
	const nobody = 65534
	base, err := os.MkdirTemp("", "sdctl-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	bin := copyTestBinary(t, base)

	setup := func(name string, mode fs.FileMode) string {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{base, dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		b, err := Open(Options{Path: filepath.Join(dir, "registry.json")})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(b.Path(), mode); err != nil {
			t.Fatal(err)
		}
		return b.Path()
	}
	probe := func(t *testing.T, path string) probeResult {
		cmd := roleCommand(t, "probe", "PROBE_PATH="+path)
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			testutil.SkipUnlessRequired(t, fmt.Sprintf("cannot run a probe as uid %d: %v %s", nobody, err, stderr.String()))
		}
		var res probeResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("probe output %q: %v", out, err)
		}
		if res.UID != nobody {
			t.Fatalf("the probe ran as uid %d, not %d", res.UID, nobody)
		}
		return res
	}

	t.Run("UnreadableFile", func(t *testing.T) {
		path := setup("private", 0o600)
		res := probe(t, path)
		if !res.ReadDenied || !strings.Contains(res.ReadErr, path) || !strings.Contains(res.ReadErr, "permission denied") {
			t.Errorf("read as another user: %q (wraps ErrPermissionDenied: %v)", res.ReadErr, res.ReadDenied)
		}
		if !res.WriteDenied || !res.FileUnchanged {
			t.Errorf("write as another user: %q (denied %v, file unchanged %v)", res.WriteErr, res.WriteDenied, res.FileUnchanged)
		}
		if res.StatusHealth != healthUnreadable || res.Writable != "false" {
			t.Errorf("status as another user: health %q writable %q", res.StatusHealth, res.Writable)
		}
	})
	t.Run("ReadOnlyDirectory", func(t *testing.T) {
		path := setup("shared", 0o644)
		res := probe(t, path)
		if res.ReadErr != "" {
			t.Errorf("read of a world-readable file: %s", res.ReadErr)
		}
		if !res.WriteDenied || !strings.Contains(res.WriteErr, path) || !res.FileUnchanged {
			t.Errorf("write into another user's directory: %q (denied %v, file unchanged %v)", res.WriteErr, res.WriteDenied, res.FileUnchanged)
		}
		if res.StatusHealth != healthReadOnly || res.Writable != "false" {
			t.Errorf("status as another user: health %q writable %q", res.StatusHealth, res.Writable)
		}
	})
}
