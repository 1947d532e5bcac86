package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TestReleaseSnapshot builds a snapshot release with the pinned goreleaser, as `make snapshot`
// does, in a copy of the working tree (so dist/, bin/image/ and the generated completions of the
// checkout are left alone), and checks its archives, checksums and image.
func TestReleaseSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("a release build for every platform takes minutes")
	}
	for _, tool := range []string{"git", "docker", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, "release snapshot needs "+tool+": "+err.Error())
		}
	}
	root := testutil.ModuleRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	sh := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=sdctl", "GIT_AUTHOR_EMAIL=sdctl@example.invalid",
			"GIT_COMMITTER_NAME=sdctl", "GIT_COMMITTER_EMAIL=sdctl@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The script prints the binary's path on stdout, and its progress (a first build takes
	// minutes) on stderr.
	find := exec.CommandContext(ctx, filepath.Join(root, "scripts", "goreleaser-bin.sh"))
	find.Dir, find.Stderr = root, os.Stderr
	path, err := find.Output()
	if err != nil {
		t.Fatalf("scripts/goreleaser-bin.sh: %v", err)
	}
	goreleaser := strings.TrimSpace(string(path))

	// The tree as git sees it (tracked and new files, nothing ignored), committed in a new
	// repository: goreleaser reads the version and commit from git.
	work := t.TempDir()
	files := strings.Split(strings.TrimSpace(sh(root, "git", "ls-files", "--cached", "--others", "--exclude-standard")), "\n")
	for _, f := range files {
		src := filepath.Join(root, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(work, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	sh(work, "git", "init", "-q")
	sh(work, "git", "add", "-A")
	sh(work, "git", "commit", "-q", "-m", "snapshot")

	sh(work, goreleaser, "check")
	out := sh(work, goreleaser, "release", "--snapshot", "--clean", "--skip=publish")
	t.Logf("goreleaser: %d lines of output", strings.Count(out, "\n"))

	dist := filepath.Join(work, "dist")
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var linuxArchive string
	for _, platform := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64"} {
		matches, _ := filepath.Glob(filepath.Join(dist, "sdctl_*_"+platform+".*"))
		if len(matches) != 1 {
			t.Errorf("%s: archives %v, want one", platform, matches)
			continue
		}
		if !strings.Contains(string(sums), filepath.Base(matches[0])) {
			t.Errorf("checksums.txt does not list %s", filepath.Base(matches[0]))
		}
		if platform == "linux_amd64" {
			linuxArchive = matches[0]
		}
	}
	if linuxArchive == "" {
		return
	}
	// The archive holds the binary, its bundled backends, completions and man pages; the binary
	// reports its version and finds the backends beside it.
	names := untar(t, linuxArchive, work)
	for _, want := range []string{"sdctl", "sdctl-backend-consul", "sdctl-backend-etcd", "sdctl-watch", "sdctl-plugin-host", "README.md", "completions/sdctl.bash", "completions/_sdctl", "manpages/sdctl.1", "manpages/sdctl-watch.1"} {
		if !names[want] {
			t.Errorf("%s lacks %s (has %v)", filepath.Base(linuxArchive), want, names)
		}
	}
	version := sh(work, filepath.Join(work, "unpacked", "sdctl"), "version")
	if !strings.Contains(version, "SNAPSHOT") {
		t.Errorf("the released binary reports %q, want the snapshot version", version)
	}
	list := sh(work, filepath.Join(work, "unpacked", "sdctl"), "backend", "list", "--template", "{{.Name}} {{.Kind}} {{.Status}} {{.Version}}\n")
	for _, name := range []string{"consul", "etcd"} {
		if !strings.Contains(list, name+" bundled ok ") || !strings.Contains(list, "SNAPSHOT") {
			t.Errorf("the released sdctl does not list %s as a working bundled backend of its version:\n%s", name, list)
		}
	}
	// `sdctl watch` runs the sdctl-watch beside it: only the Docker client there can refuse this
	// address (exit 2, its own words).
	if out, err := exec.Command(filepath.Join(work, "unpacked", "sdctl"), "watch", "--docker-host", "tcp://a b").CombinedOutput(); exitOf(err) != 2 || !strings.Contains(string(out), "docker: parse") {
		t.Errorf("the released sdctl watch did not run sdctl-watch: %v: %s", err, out)
	}
	// The image was built from the same binaries; it runs without a shell in it.
	imageOut := sh(work, "docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "sdctl")
	var tag string
	for _, line := range strings.Split(imageOut, "\n") {
		if strings.Contains(line, "SNAPSHOT") {
			tag = line
		}
	}
	if tag == "" {
		t.Fatalf("no sdctl:*SNAPSHOT* image after the snapshot; images: %s", imageOut)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag).Run() })
	if got := sh(work, "docker", "run", "--rm", "--network", "none", tag, "version"); !strings.Contains(got, "SNAPSHOT") {
		t.Errorf("docker run %s version: %q", tag, got)
	}
	if out, err := exec.Command("docker", "run", "--rm", "--network", "none", tag, "watch", "--docker-host", "tcp://a b").CombinedOutput(); exitOf(err) != 2 || !strings.Contains(string(out), "docker: parse") {
		t.Errorf("docker run %s watch did not run sdctl-watch: %v: %s", tag, err, out)
	}
	got := sh(work, "docker", "run", "--rm", "--network", "none", tag, "backend", "list", "--template", "{{.Name}} {{.Kind}} {{.Status}}\n")
	for _, name := range []string{"consul", "etcd"} {
		if !strings.Contains(got, name+" bundled ok") {
			t.Errorf("docker run %s backend list does not list %s as a working bundled backend:\n%s", tag, name, got)
		}
	}
}

// untar unpacks a .tar.gz into dir/unpacked and returns the names it held.
func untar(t *testing.T, archive, dir string) map[string]bool {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dst := filepath.Join(dir, "unpacked", filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, os.FileMode(h.Mode)&0o755|0o600); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// exitOf is the exit code of a finished command's error (0 for nil, -1 when it did not run).
func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestImage builds the container image as `make image` does and checks it as a user runs it
// (scripts/image-test.sh): version and help, the non-root user, register in one container and
// resolve in another through a volume, nothing pulled, everything removed.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image")
	}
	for _, tool := range []string{"docker", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, "the image test needs "+tool+": "+err.Error())
		}
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		testutil.SkipUnlessRequired(t, "the image test needs a Docker engine: "+err.Error())
	}
	root := testutil.ModuleRoot(t)
	cmd := exec.Command(filepath.Join(root, "scripts", "image-test.sh"))
	cmd.Dir = root
	// A private build context: other tests build images from this tree at the same time.
	// Its own image name, removed afterwards: each run builds a new image.
	name := fmt.Sprintf("sdctl-image-test-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", name).Output()
		for _, ref := range strings.Fields(string(out)) {
			_ = exec.Command("docker", "image", "rm", ref).Run()
		}
	})
	cmd.Env = append(os.Environ(), "IMAGE_CONTEXT="+t.TempDir(), "IMAGE="+name)
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/image-test.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/image-test.sh: %v", err)
	}
}
