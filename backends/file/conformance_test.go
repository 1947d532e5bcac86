package file

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// openTemp opens a backend on a fresh file in a temporary directory.
func openTemp(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(Options{Path: filepath.Join(t.TempDir(), "registry.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry { return openTemp(t) }, registrytest.Options{
		TTL:    true,
		Watch:  true,
		MinTTL: time.Second,
	})
}

func TestConformancePolling(t *testing.T) {
	// The same suite with notifications off, as on file systems that deliver none.
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		b, err := Open(Options{Path: filepath.Join(t.TempDir(), "registry.json"), PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		b.pollOnly = true
		t.Cleanup(func() { _ = b.Close() })
		return b
	}, registrytest.Options{TTL: true, Watch: true, MinTTL: time.Second})
}
