package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TestCheckTrackedRefusesBuildOutput runs scripts/check-tracked.sh (the first step of
// `make test`) in a scratch repository: it passes on sources and scripts, and names each kind
// of build output staged there: a compiled program, an executable that is not a script, and a
// file over 1 MiB, whether or not the working tree still has them.
func TestCheckTrackedRefusesBuildOutput(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testutil.SkipUnlessRequired(t, "the check reads a git index: "+err.Error())
	}
	root := testutil.ModuleRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "scripts", "check-tracked.sh"))
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.Executable() // this test binary: a compiled program over 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	elf, err := os.ReadFile(program)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		git("add", "-f", name)
	}
	check := func() (string, error) {
		cmd := exec.Command(filepath.Join(dir, "scripts", "check-tracked.sh"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	git("init", "-q")
	write("scripts/check-tracked.sh", script, 0o755)
	write("main.go", []byte("package main\n\nfunc main() {}\n"), 0o644)
	write("testdata/blob.bin", []byte{0, 1, 2, 3, 0, 0, 0, 0}, 0o644) // binary, not a program
	if out, err := check(); err != nil {
		t.Fatalf("sources and scripts refused: %v\n%s", err, out)
	}

	write("cmd/tool/tool", elf[:4096], 0o644)                            // a program's start, not executable
	write("run", []byte("echo hello\n"), 0o755)                          // executable without #!
	write("data/big.txt", []byte(strings.Repeat("x\n", 600_000)), 0o644) // 1.2 MB of text
	write("bin/program", elf, 0o755)                                     // a program over 1 MiB
	// Staged and then gone from the working tree: the index is what a commit takes.
	if err := os.Remove(filepath.Join(dir, "bin", "program")); err != nil {
		t.Fatal(err)
	}
	out, err := check()
	if err == nil {
		t.Fatalf("build output passed:\n%s", out)
	}
	for _, want := range []string{
		"cmd/tool/tool is a compiled program",
		"run is marked executable but is not a script",
		"data/big.txt is 1200000 bytes (over 1 MiB)",
		"bin/program is a compiled program",
		fmt.Sprintf("bin/program is %d bytes (over 1 MiB)", len(elf)),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "main.go") || strings.Contains(out, "blob.bin") || strings.Contains(out, "check-tracked.sh:") {
		t.Errorf("a source file was refused:\n%s", out)
	}
}

// TestBuildOutputIsIgnored checks the ignore rules against what `go build` writes when it is
// run in the root or in a program's folder, and that they hide no tracked file.
func TestBuildOutputIsIgnored(t *testing.T) {
	root := testutil.ModuleRoot(t)
	if err := exec.Command("git", "-C", root, "rev-parse", "--git-dir").Run(); err != nil {
		testutil.SkipUnlessRequired(t, "the ignore rules need a git checkout: "+err.Error())
	}
	var outputs []string
	for _, pattern := range []string{"cmd/*/main.go", "tools/*/main.go", "examples/*/main.go"} {
		mains, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mains {
			dir := filepath.Dir(m)
			rel, _ := filepath.Rel(root, dir)
			outputs = append(outputs, filepath.Base(dir), filepath.Join(rel, filepath.Base(dir)))
		}
	}
	if len(outputs) < 12 {
		t.Fatalf("found only %d programs: %v", len(outputs)/2, outputs)
	}
	cmd := exec.Command("git", append([]string{"-C", root, "check-ignore", "--no-index", "--verbose", "--non-matching"}, outputs...)...)
	out, _ := cmd.Output() // exit status 1 when one is not ignored; the lines say which
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "::") {
			t.Errorf("build output not ignored: %s", strings.TrimSpace(strings.TrimPrefix(line, "::")))
		}
	}
	hidden, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--ignored", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(hidden) > 0 {
		t.Errorf("tracked files that the ignore rules match:\n%s", hidden)
	}
}
