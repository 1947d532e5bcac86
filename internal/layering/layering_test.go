// Package layering holds no code: its test checks that the layers README.md describes ("How
// the code is laid out") hold, so that they are kept by a check rather than by habit.
package layering

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sdctl/sdctl"

// notShipped are the internal packages that only tests and tools/ use: no sdctl binary links
// them.
var notShipped = []string{"internal/harness", "internal/testutil", "internal/e2e"}

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

// packages lists the module's packages with their direct imports (not those of tests).
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func under(path string, roots ...string) bool {
	for _, r := range roots {
		r = module + "/" + r
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

// backendOf names the backend a package belongs to (file for backends/file/...).
func backendOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/backends/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	return name, true
}

// TestLayers checks who may import what.
func TestLayers(t *testing.T) {
	rules := []struct {
		what    string
		imports func(string) bool
		allowed func(pkg string) bool
	}{
		{"viper (configuration) only in internal/config",
			func(i string) bool { return strings.HasPrefix(i, "github.com/spf13/viper") },
			func(p string) bool { return under(p, "internal/config") }},
		{"cobra (the CLI) only in commands/, cmd/ and the docs generator",
			func(i string) bool { return strings.HasPrefix(i, "github.com/spf13/cobra") },
			func(p string) bool { return under(p, "commands", "cmd", "tools/docgen") }},
		{"commands/ only from cmd/ and the docs generator",
			func(i string) bool { return under(i, "commands") },
			func(p string) bool { return under(p, "cmd", "tools/docgen") }},
		{"the domain (registry/) imports no CLI, configuration, transport or backend",
			func(i string) bool {
				return strings.HasPrefix(i, "github.com/spf13/") || strings.HasPrefix(i, "google.golang.org/grpc") ||
					strings.HasPrefix(i, "github.com/hashicorp/go-plugin") || (strings.HasPrefix(i, module+"/") && !under(i, "registry"))
			},
			func(p string) bool { return !under(p, "registry") }},
		{"backends import no plugin host and no commands",
			func(i string) bool { return under(i, "commands", "plugins") },
			func(p string) bool { return !under(p, "backends") }},
		{"the test and benchmark harnesses only from each other and tools/: shipped code never links them",
			func(i string) bool { return under(i, notShipped...) },
			func(p string) bool { return under(p, slices.Concat(notShipped, []string{"tools"})...) }},
	}
	for _, p := range packages(t) {
		for _, imp := range p.Imports {
			for _, r := range rules {
				if r.imports(imp) && !r.allowed(p.ImportPath) {
					t.Errorf("%s imports %s: %s", p.ImportPath, imp, r.what)
				}
			}
			// Each backend stands alone: one registry's package never reaches into another's.
			if b, ok := backendOf(p.ImportPath); ok {
				if other, ok := backendOf(imp); ok && other != b {
					t.Errorf("%s imports %s: backends import no other backend", p.ImportPath, imp)
				}
			}
			// The plugin SDK and the backends are built against by third parties and run as
			// their own processes: they get what they need passed in, not from internal/.
			if under(p.ImportPath, "backends", "plugins") && under(imp, "internal") {
				t.Errorf("%s imports %s: the plugin SDK and the backends get what they need passed in, not from internal/", p.ImportPath, imp)
			}
		}
	}
}

var osExit = regexp.MustCompile(`\bos\.Exit\(`)

// TestExitOnlyInMain checks that only the programs' main packages end the process.
func TestExitOnlyInMain(t *testing.T) {
	for _, p := range packages(t) {
		if under(p.ImportPath, "cmd", "examples", "tools", "internal/testutil") {
			continue // programs, whose main decides the exit code, and test harnesses for TestMain
		}
		for _, f := range p.GoFiles {
			data, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if osExit.Match(data) {
				t.Errorf("%s: os.Exit outside a main package: return an error or an exit code instead", filepath.Join(p.Dir, f))
			}
		}
	}
}

// TestReadmeLayoutMatchesTree keeps README's "How the code is laid out" in step with the tree:
// every path it names exists, and every top-level folder and every package is named in it (by
// path, or by name on its parent's line).
func TestReadmeLayoutMatchesTree(t *testing.T) {
	root := moduleRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## How the code is laid out\n")
	if !ok {
		t.Fatal(`README.md has no "## How the code is laid out" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")

	// Named: the first column of the code blocks, where a|b|c stands for a, b and c.
	named := 0
	inBlock := false
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		first, _, _ := strings.Cut(line, " ")
		if !inBlock || first == "" || strings.HasSuffix(first, "...") {
			continue
		}
		dir, alts, _ := strings.Cut(strings.TrimSuffix(first, "/"), "|")
		parent, base := filepath.Split(dir)
		for _, name := range append([]string{base}, strings.Split(alts, "|")...) {
			if name == "" {
				continue
			}
			named++
			if _, err := os.Stat(filepath.Join(root, parent, name)); err != nil {
				t.Errorf("README's layout names %s, which is not in the tree", filepath.Join(parent, name))
			}
		}
	}
	if named < 20 {
		t.Fatalf("read only %d paths from README's layout section", named)
	}

	mentioned := func(rel string) bool {
		if strings.Contains(section, rel) {
			return true
		}
		return regexp.MustCompile(`\b` + regexp.QuoteMeta(filepath.Base(rel)) + `\b`).MatchString(section)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !ignored(t, root, e.Name()) && !strings.Contains(section, e.Name()+"/") {
			t.Errorf("README's layout does not mention the folder %s/", e.Name())
		}
	}
	for _, p := range packages(t) {
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if rel != "." && !mentioned(filepath.ToSlash(rel)) {
			t.Errorf("README's layout does not mention the package %s", rel)
		}
	}
}

// moduleRoot is the folder of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// ignored reports whether git ignores name (build output such as bin/), outside a checkout
// nothing is.
func ignored(t *testing.T, root, name string) bool {
	t.Helper()
	return exec.Command("git", "-C", root, "check-ignore", "-q", name).Run() == nil
}
