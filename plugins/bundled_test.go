package plugins_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
)

// bundledHost is a host whose sdctl lives in dir, with the bundled backends names.
func bundledHost(t *testing.T, dir string, names ...string) *host.Host {
	t.Helper()
	h := newHost(t, nil)
	h.Executable = filepath.Join(dir, "sdctl")
	h.Dirs = []string{dir}
	for _, n := range names {
		h.Bundled = append(h.Bundled, host.BundledBackend{Name: n})
	}
	return h
}

// memoryBeside builds the example backend and copies it into a new directory as
// sdctl-backend-NAME: a bundled backend for a host whose sdctl is in that directory.
func memoryBeside(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(testutil.Build(t, "./examples/sdctl-backend-memory", "sdctl-backend-memory"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, host.ExternalPrefix+name), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBundledBackendFoundBesideSdctl(t *testing.T) {
	dir := memoryBeside(t, "memory")
	h := bundledHost(t, dir, "memory")
	var rows []host.Candidate
	for _, c := range h.List() {
		if c.Name == "memory" {
			rows = append(rows, c)
		}
	}
	// The binary's directory is also on the plugin path: the executable is listed once.
	if len(rows) != 1 || !rows[0].Bundled || rows[0].Missing || rows[0].Path != filepath.Join(dir, "sdctl-backend-memory") {
		t.Fatalf("memory listed as %+v, want one bundled candidate in %s", rows, dir)
	}
	c, err := plugins.StartNamed(h, "memory")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Candidate.Bundled {
		t.Fatalf("started %+v, want the bundled candidate", c.Candidate)
	}
	ctx := context.Background()
	if err := c.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(got) != 1 {
		t.Fatalf("Instances: %v, %v", got, err)
	}
}

func TestBundledBackendShadowsExternalOfItsName(t *testing.T) {
	dir := memoryBeside(t, "memory")
	other := memoryBeside(t, "memory")
	h := bundledHost(t, dir, "memory")
	h.Dirs = []string{other, dir} // the user's plugin path comes first, yet the bundled one wins
	c, err := h.Find("memory")
	if err != nil || !c.Bundled || filepath.Dir(c.Path) != dir {
		t.Fatalf("Find: %+v, %v; want the bundled backend in %s", c, err, dir)
	}
	for _, l := range h.List() {
		if l.Path == filepath.Join(other, "sdctl-backend-memory") && l.ShadowedBy != "bundled" {
			t.Errorf("external %+v is not shadowed by the bundled backend", l)
		}
	}
}

func TestBundledBackendMissing(t *testing.T) {
	dir := t.TempDir()
	h := bundledHost(t, dir, "memory")
	_, err := h.Find("memory")
	if !errors.Is(err, host.ErrBundledMissing) || !strings.Contains(err.Error(), filepath.Join(dir, "sdctl-backend-memory")) ||
		!strings.Contains(err.Error(), "go install github.com/sdctl/sdctl/cmd/...") {
		t.Fatalf("Find of a missing bundled backend: %v; want ErrBundledMissing naming the path and how to install it", err)
	}
	var missing []host.Candidate
	for _, c := range h.List() {
		if c.Missing {
			missing = append(missing, c)
		}
	}
	if len(missing) != 1 || missing[0].Name != "memory" {
		t.Fatalf("List: missing %+v, want memory", missing)
	}
	if h.CanWarm(missing[0]) {
		t.Error("CanWarm is true for a missing bundled backend")
	}

	// An external backend of that name on the plugin path stands in, as an external one.
	h.Dirs = []string{memoryBeside(t, "memory")}
	c, err := h.Find("memory")
	if err != nil || c.Bundled || c.Builtin {
		t.Fatalf("Find with an external memory on the plugin path: %+v, %v; want the external one", c, err)
	}
}
