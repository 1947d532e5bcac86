package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func withClock(b *Backend, start time.Time) *fakeClock {
	c := &fakeClock{t: start}
	b.now = c.now
	return c
}

func TestTTLHealth(t *testing.T) {
	b := openTemp(t)
	clock := withClock(b, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	ctx := t.Context()
	inst := webInstance("web-1", 1)
	inst.TTL = 10 * time.Second
	if err := b.Register(ctx, inst); err != nil {
		t.Fatal(err)
	}
	health := func() (registry.Health, time.Time) {
		t.Helper()
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil || len(got) != 1 {
			t.Fatalf("Instances: %v %v", got, err)
		}
		return got[0].Health, got[0].Expires
	}
	if h, exp := health(); h != registry.HealthPassing || !exp.Equal(clock.t.Add(10*time.Second)) {
		t.Errorf("fresh: health %q expires %v", h, exp)
	}
	clock.advance(10 * time.Second)
	if h, _ := health(); h != registry.HealthCritical {
		t.Errorf("at expiry: health %q, want critical", h)
	}
	svcs, _ := b.Services(ctx)
	if len(svcs) != 1 || svcs[0].Instances != 1 || svcs[0].Passing != 0 {
		t.Errorf("Services with an expired instance = %+v", svcs)
	}
	if err := b.Heartbeat(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if h, exp := health(); h != registry.HealthPassing || !exp.Equal(clock.t.Add(10*time.Second)) {
		t.Errorf("after heartbeat: health %q expires %v", h, exp)
	}
	data, _ := os.ReadFile(b.Path())
	if !strings.Contains(string(data), `"ttl":"10s","expires":"2026-11-26T12:00:20Z"`) {
		t.Errorf("the file does not hold the TTL and expiry readably:\n%s", data)
	}
}

func TestHandSetHealth(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	doc := `{"format": "sdctl-file-registry/1", "revision": 1, "instances": [
		{"id": "web-1", "name": "web", "address": "10.0.0.1", "port": 1, "health": "maintenance"},
		{"id": "web-2", "name": "web", "address": "10.0.0.2", "port": 2, "health": "critical"},
		{"id": "web-3", "name": "web", "address": "10.0.0.3", "port": 3, "health": "warning"},
		{"id": "web-4", "name": "web", "address": "10.0.0.4", "port": 4}
	]}`
	if err := os.WriteFile(b.Path(), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := b.Instances(ctx, registry.Query{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := []registry.Health{registry.HealthMaintenance, registry.HealthCritical, registry.HealthWarning, registry.HealthPassing}
	for i, inst := range all {
		if inst.Health != want[i] {
			t.Errorf("%s: health %q, want %q", inst.ID, inst.Health, want[i])
		}
	}
	for _, tc := range []struct {
		q    registry.Query
		want string
	}{
		{registry.Query{Name: "web", HealthyOnly: true}, "web-4"},
		{registry.Query{Name: "web", HealthyOnly: true, IncludeWarning: true}, "web-3 web-4"},
	} {
		got, _ := b.Instances(ctx, tc.q)
		if ids := strings.Join(instanceIDs(got), " "); ids != tc.want {
			t.Errorf("Instances(%+v) = %s, want %s", tc.q, ids, tc.want)
		}
	}
	// Maintenance is an operator's decision; a service re-registering must not undo it.
	if err := b.Register(ctx, webInstance("web-1", 11)); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Instances(ctx, registry.Query{Name: "web"})
	if got[0].Port != 11 || got[0].Health != registry.HealthMaintenance {
		t.Errorf("after re-registering web-1: port %d health %q, want 11 maintenance", got[0].Port, got[0].Health)
	}
}

// TestDeclaredHealth checks how a declared health combines with a hand-set one and the TTL,
// and what the file holds.
func TestDeclaredHealth(t *testing.T) {
	b := openTemp(t)
	clock := withClock(b, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	ctx := t.Context()
	doc := `{"format": "sdctl-file-registry/1", "revision": 1, "instances": [
		{"id": "web-1", "name": "web", "address": "10.0.0.1", "port": 1, "health": "maintenance"},
		{"id": "web-2", "name": "web", "address": "10.0.0.2", "port": 2}
	]}`
	if err := os.WriteFile(b.Path(), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	health := func(id string) registry.Health {
		t.Helper()
		return registrytest.HealthOf(ctx, t, b, "web", id)
	}
	register := func(inst registry.Instance, h registry.Health) {
		t.Helper()
		inst.Health = h
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	file := func() string {
		t.Helper()
		data, err := os.ReadFile(b.Path())
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	web1 := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1}
	web2 := registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 2}

	// A declared passing does not undo an operator's maintenance; both are in the file.
	register(web1, registry.HealthPassing)
	if h := health("web-1"); h != registry.HealthMaintenance {
		t.Errorf("hand-set maintenance, declared passing: health %q, want maintenance", h)
	}
	if f := file(); !strings.Contains(f, `"health":"maintenance","declared_health":"passing"}`) || !strings.Contains(f, `"format": "sdctl-file-registry/2"`) {
		t.Errorf("the file does not hold both states in format 2:\n%s", f)
	}

	register(web2, registry.HealthCritical)
	if h := health("web-2"); h != registry.HealthCritical {
		t.Errorf("declared critical: health %q", h)
	}
	rev := readDoc(t, b.Path()).Revision
	register(web2, registry.HealthCritical)
	if got := readDoc(t, b.Path()).Revision; got != rev {
		t.Errorf("repeating a declaration wrote revision %d after %d", got, rev)
	}
	register(web2, "")
	if h := health("web-2"); h != registry.HealthPassing {
		t.Errorf("declaration dropped: health %q, want passing", h)
	}

	// Dropping the declaration keeps the hand-set health, and the last declaration gone, the
	// file goes back to format 1.
	register(web1, "")
	if h := health("web-1"); h != registry.HealthMaintenance {
		t.Errorf("hand-set maintenance, declaration dropped: health %q, want maintenance", h)
	}
	if f := file(); strings.Contains(f, "declared_health") || !strings.Contains(f, `"format": "sdctl-file-registry/1"`) {
		t.Errorf("the file still declares health or is not format 1:\n%s", f)
	}

	// The TTL is the registry's own verdict: it wins when worse than the declared state.
	web3 := registry.Instance{ID: "web-3", Name: "web", Address: "10.0.0.3", Port: 3, TTL: 10 * time.Second}
	web4 := registry.Instance{ID: "web-4", Name: "web", Address: "10.0.0.4", Port: 4, TTL: 10 * time.Second}
	register(web3, registry.HealthWarning)
	register(web4, registry.HealthMaintenance)
	if h3, h4 := health("web-3"), health("web-4"); h3 != registry.HealthWarning || h4 != registry.HealthMaintenance {
		t.Errorf("fresh TTL: health %q and %q, want warning and maintenance", h3, h4)
	}
	clock.advance(10 * time.Second)
	if h3, h4 := health("web-3"), health("web-4"); h3 != registry.HealthCritical || h4 != registry.HealthMaintenance {
		t.Errorf("expired TTL: health %q and %q, want critical and maintenance", h3, h4)
	}
	if err := b.Heartbeat(ctx, "web-3"); err != nil {
		t.Fatal(err)
	}
	if h := health("web-3"); h != registry.HealthWarning {
		t.Errorf("after a heartbeat: health %q, want the declared warning", h)
	}
	svcs, err := b.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[0].Instances != 4 || svcs[0].Passing != 1 {
		t.Errorf("Services = %+v, %v; want web with 4 instances, 1 passing", svcs, err)
	}
}

func instanceIDs(insts []registry.Instance) []string {
	var ids []string
	for _, inst := range insts {
		ids = append(ids, inst.ID)
	}
	return ids
}

func TestErrorMessages(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	if err := b.Register(ctx, webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	withCheck := webInstance("web-2", 2)
	withCheck.Checks = []registry.Check{{Kind: registry.CheckHTTP, Target: "http://10.0.0.1:2/health"}}
	for _, tc := range []struct {
		name   string
		err    error
		target error
		says   []string
	}{
		{"Checks", b.Register(ctx, withCheck), registry.ErrUnsupported, []string{"--ttl", "--keepalive", "consul"}},
		{"HeartbeatWithoutTTL", b.Heartbeat(ctx, "web-1"), registry.ErrInvalid, []string{`"web-1"`, "without a TTL", "--ttl"}},
		{"HeartbeatUnknown", b.Heartbeat(ctx, "web-9"), registry.ErrNotFound, []string{`"web-9"`, b.Path()}},
		{"DeregisterUnknown", b.Deregister(ctx, "web-9"), registry.ErrNotFound, []string{`"web-9"`}},
		{"InvalidUTF8", b.Register(ctx, registry.Instance{ID: "web-\xff", Name: "web", Address: "10.0.0.1", Port: 1}), registry.ErrInvalid, []string{"UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.target) {
				t.Fatalf("got %v, want an error wrapping %q", tc.err, tc.target)
			}
			for _, s := range tc.says {
				if !strings.Contains(tc.err.Error(), s) {
					t.Errorf("error %q does not mention %q", tc.err, s)
				}
			}
		})
	}
	if doc := readDoc(t, b.Path()); doc.Revision != 1 || len(doc.Instances) != 1 {
		t.Errorf("failed calls wrote: revision %d, %d instances", doc.Revision, len(doc.Instances))
	}
}

func TestReRegisterUnchangedDoesNotWrite(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	inst := webInstance("web-1", 1)
	inst.Tags = []string{"a"}
	inst.Meta = map[string]string{"k": "v"}
	for range 3 {
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	if doc := readDoc(t, b.Path()); doc.Revision != 1 {
		t.Errorf("three identical registrations wrote %d revisions, want 1", doc.Revision)
	}
	inst.Tags = []string{"a", "b"}
	if err := b.Register(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if doc := readDoc(t, b.Path()); doc.Revision != 2 {
		t.Errorf("a changed registration did not write: revision %d", doc.Revision)
	}
}

func TestRevisionCountsWrites(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	inst := webInstance("web-1", 1)
	inst.TTL = time.Minute
	steps := []func() error{
		func() error { return b.Register(ctx, inst) },
		func() error { return b.Heartbeat(ctx, "web-1") },
		func() error { return b.Register(ctx, webInstance("web-2", 2)) },
		func() error { return b.Deregister(ctx, "web-2") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		if doc := readDoc(t, b.Path()); doc.Revision != uint64(i+1) {
			t.Fatalf("after write %d: revision %d", i+1, doc.Revision)
		}
	}
}

func TestKeepsFileModeAndSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "registry.json")
	link := filepath.Join(dir, "registry.json")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte(`{"format": "sdctl-file-registry/1"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	b, err := Open(Options{Path: link})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", info.Mode(), err)
	}
	if info, err := os.Stat(target); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("the file mode changed to %v (%v), want 0640", info.Mode().Perm(), err)
	}
	if doc := readDoc(t, target); len(doc.Instances) != 1 {
		t.Errorf("the symlink target holds %d instances", len(doc.Instances))
	}
}

func TestCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "registry.json")
	b, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Instances(t.Context(), registry.Query{Name: "web"}); err != nil || len(got) != 0 {
		t.Fatalf("Instances before the first write: %v %v", got, err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read created the directory (%v)", err)
	}
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Dir(path))
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
}

func TestClosed(t *testing.T) {
	b := openTemp(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.Instances(t.Context(), registry.Query{Name: "web"}); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Instances after Close: %v", err)
	}
}
