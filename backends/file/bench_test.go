package file

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// sampleDocument builds a document of n instances spread over n/10 services, with the tags,
// metadata and TTLs a registry fed by `sdctl watch` typically holds.
func sampleDocument(n int, now time.Time) *document {
	doc := &document{Revision: uint64(n)}
	for i := range n {
		r := record{
			ID:      fmt.Sprintf("svc%04d-10.%d.%d.%d-%d", i/10, i/65536%256, i/256%256, i%256, 3000+i%10),
			Name:    fmt.Sprintf("svc%04d", i/10),
			Address: fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256),
			Port:    3000 + i%10,
			Tags:    []string{"env-prod", fmt.Sprintf("v%d", i%3)},
			Meta:    map[string]string{"container": fmt.Sprintf("c%08x", i), "node": "host-1"},
		}
		if i%2 == 0 {
			r.TTL = 30 * time.Second
			r.Expires = now.Add(r.TTL)
		}
		doc.Instances = append(doc.Instances, r)
	}
	slices.SortFunc(doc.Instances, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	return doc
}

func writeSample(b testing.TB, n int) *Backend {
	b.Helper()
	path := filepath.Join(b.TempDir(), "registry.json")
	if err := os.WriteFile(path, encode(sampleDocument(n, time.Now())), 0o600); err != nil {
		b.Fatal(err)
	}
	be, err := Open(Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkInstances10k is the work of `sdctl resolve` in the backend process: read a
// 10,000-instance file and select one service.
func BenchmarkInstances10k(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			be := writeSample(b, n)
			ctx := context.Background()
			info, _ := os.Stat(be.Path())
			b.SetBytes(info.Size())
			b.ReportAllocs()
			for b.Loop() {
				got, err := be.Instances(ctx, registry.Query{Name: "svc0042", HealthyOnly: true})
				if err != nil || len(got) == 0 && n > 420 {
					b.Fatalf("Instances: %v, %d", err, len(got))
				}
			}
		})
	}
}

// BenchmarkRegister measures one registration (lock, read, write, fsync, rename) into a file
// already holding n instances.
func BenchmarkRegister(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			be := writeSample(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// The port changes on every iteration so that each call really writes.
				inst := registry.Instance{ID: fmt.Sprint("bench-", i%100), Name: "bench", Address: "10.9.9.9", Port: 1 + i%65535}
				if err := be.Register(ctx, inst); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkDecode10k compares the read paths: a sealed file (as sdctl writes it) against the
// same file after a hand edit, which must be parsed and validated in full.
func BenchmarkDecode10k(b *testing.B) {
	sealed := encode(sampleDocument(10000, time.Now()))
	edited := bytes.Replace(sealed, []byte(`"checksum": "crc32c:`), []byte(`"checksum": "crc32c:x`), 1)
	for _, tc := range []struct {
		name string
		data []byte
		mode decodeMode
	}{
		{"sealed/one-service", sealed, decodeMode{service: "svc0042"}},
		{"sealed/all", sealed, decodeMode{}},
		{"sealed/raw", sealed, decodeMode{raw: true}},
		{"hand-edited/one-service", edited, decodeMode{service: "svc0042"}},
		{"hand-edited/all", edited, decodeMode{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode(tc.data, tc.mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
