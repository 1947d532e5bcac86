package main

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommittedDocsAreCurrent regenerates the reference into a temporary directory and
// compares it with docs/cli and docs/man, file by file.
func TestCommittedDocsAreCurrent(t *testing.T) {
	tmp := t.TempDir()
	md, man := filepath.Join(tmp, "cli"), filepath.Join(tmp, "man")
	if err := generate(newRoot(), md, man); err != nil {
		t.Fatal(err)
	}
	compareDirs(t, "docs/cli", filepath.Join("..", "..", "docs", "cli"), md)
	compareDirs(t, "docs/man", filepath.Join("..", "..", "docs", "man"), man)
}

// compareDirs fails the test when committed and fresh do not hold the same files with the same
// contents, naming what differs.
func compareDirs(t *testing.T, name, committed, fresh string) {
	t.Helper()
	want, got := readDir(t, fresh), readDir(t, committed)
	var differ, missing, extra []string
	for file, data := range want {
		old, ok := got[file]
		switch {
		case !ok:
			missing = append(missing, file)
		case !bytes.Equal(old, data):
			differ = append(differ, file)
		}
	}
	for file := range got {
		if _, ok := want[file]; !ok {
			extra = append(extra, file)
		}
	}
	if len(differ)+len(missing)+len(extra) == 0 {
		return
	}
	var why []string
	for _, l := range []struct {
		what  string
		files []string
	}{{"out of date", differ}, {"missing", missing}, {"no longer generated", extra}} {
		if len(l.files) > 0 {
			sort.Strings(l.files)
			why = append(why, l.what+": "+strings.Join(l.files, ", "))
		}
	}
	t.Errorf("%s is stale: run make docs (%s)", name, strings.Join(why, "; "))
}

// readDir returns the regular files of dir by name; a missing dir holds none.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return files
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

// TestOutputIgnoresTheMachine renders the real tree under two different environments.
func TestOutputIgnoresTheMachine(t *testing.T) {
	renderWith := func(env map[string]string) (map[string][]byte, map[string][]byte) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		md, man, err := render(newRoot())
		if err != nil {
			t.Fatal(err)
		}
		return md, man
	}
	md1, man1 := renderWith(map[string]string{"HOME": "/home/a", "XDG_DATA_HOME": "/data/a", "XDG_CONFIG_HOME": "", "SDCTL_BACKEND": "", "TZ": "UTC"})
	md2, man2 := renderWith(map[string]string{"HOME": "/srv/b", "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "/etc/b", "SDCTL_BACKEND": "etcd", "TZ": "Asia/Tokyo"})
	for _, pair := range []struct{ a, b map[string][]byte }{{md1, md2}, {man1, man2}} {
		if len(pair.a) != len(pair.b) {
			t.Fatalf("%d pages, then %d", len(pair.a), len(pair.b))
		}
		for name, data := range pair.a {
			if !bytes.Equal(data, pair.b[name]) {
				t.Errorf("%s depends on the environment:\n%s\n---\n%s", name, data, pair.b[name])
			}
		}
	}
	for name, data := range man1 {
		if !strings.Contains(string(data), `.TH "`) || strings.Contains(string(data), "0001") {
			t.Errorf("%s: header not as expected:\n%s", name, strings.SplitN(string(data), "\n", 3)[1])
		}
	}
}

func TestHiddenCommandsAndTagsLeftOut(t *testing.T) {
	root := &cobra.Command{Use: "sdctl", Short: "root"}
	root.AddCommand(
		&cobra.Command{Use: "shown", Short: "a command", Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "serve", Short: "internal", Hidden: true, Run: func(*cobra.Command, []string) {}},
	)
	md, man, err := render(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"README.md", "sdctl.md", "sdctl_shown.md"} {
		if _, ok := md[want]; !ok {
			t.Errorf("no %s among %v", want, slices.Sorted(maps.Keys(md)))
		}
	}
	if len(md) != 3 {
		t.Errorf("Markdown pages %v, want README.md, sdctl.md, sdctl_shown.md", slices.Sorted(maps.Keys(md)))
	}
	if len(man) != 2 || man["sdctl-shown.1"] == nil {
		t.Errorf("man pages %v, want sdctl.1, sdctl-shown.1", slices.Sorted(maps.Keys(man)))
	}
	for name, data := range md {
		if strings.Contains(string(data), "serve") || strings.Contains(string(data), "Auto generated") {
			t.Errorf("%s mentions the hidden command or the generator tag:\n%s", name, data)
		}
	}
}

// TestWriteDirRemovesStalePages checks that regenerating drops pages of removed commands but
// leaves other files alone.
func TestWriteDirRemovesStalePages(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"old.md": "x", "keep.txt": "y", "same.md": "z"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeDir(dir, ".md", map[string][]byte{"same.md": []byte("z"), "new.md": []byte("n")}); err != nil {
		t.Fatal(err)
	}
	got := readDir(t, dir)
	if want := []string{"keep.txt", "new.md", "same.md"}; strings.Join(slices.Sorted(maps.Keys(got)), " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", slices.Sorted(maps.Keys(got)), want)
	}
}
