package file

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// The document cache of a long-lived backend (see docCache) must never answer with what the
// file no longer says, nor let a caller change what later reads return.
func TestReadCacheFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	open := func() *Backend {
		b, err := Open(Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	reader, writer := open(), open() // two processes, in effect
	ctx := context.Background()
	names := func() string {
		t.Helper()
		got, err := reader.Instances(ctx, registry.Query{Name: "web"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, in := range got {
			ids = append(ids, in.ID+"="+strings.Join(in.Tags, ","))
		}
		return strings.Join(ids, " ")
	}
	reg := func(id, addr string, tags ...string) {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		p, _ := registry.ParsePort(port)
		if err := writer.Register(ctx, registry.Instance{ID: id, Name: "web", Address: host, Port: p, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}

	reg("a", "10.0.0.1:80", "x")
	if got := names(); got != "a=x" {
		t.Fatalf("first read: %q", got)
	}
	if runtime.GOOS == "linux" && !reader.store.cache.key.valid {
		t.Fatal("the document was not cached after a read")
	}
	// A caller changing what it got changes nothing for the next one.
	got, _ := reader.Instances(ctx, registry.Query{Name: "web"})
	got[0].Tags[0] = "changed"
	if got := names(); got != "a=x" {
		t.Fatalf("after a caller changed its copy: %q", got)
	}
	// A write by another process (a new file renamed over the old one) is seen at once.
	reg("b", "10.0.0.2:80", "y")
	if got := names(); got != "a=x b=y" {
		t.Fatalf("after another process registered b: %q", got)
	}
	// So is an edit in place that keeps the size: the file's times change.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), `"tags":["y"]`, `"tags":["z"]`, 1)
	if edited == string(data) {
		t.Fatalf("the document does not hold the tags as expected:\n%s", data)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(edited), 0); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	// The edit breaks the checksum, so the document is read as hand-edited: still valid.
	if got := names(); got != "a=x b=z" {
		t.Fatalf("after an edit in place: %q", got)
	}
	// And a removed file is an empty registry, not the cached one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "" {
		t.Fatalf("after the file was removed: %q", got)
	}
}
