package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// Every package linked into a binary runs its init in every process, used or not, and its code
// is in the memory of every process: sdctl must not link the backends that ship beside it, the
// Docker client (sdctl-watch has it), nor go-plugin and gRPC (sdctl-plugin-host has them, for
// external backends); neither the watcher nor a bundled backend links go-plugin (they talk
// over a socket pair), and each bundled backend links only its own client. This holds on Unix;
// elsewhere every backend is started with go-plugin.
func TestBinariesLinkOnlyWhatTheyUse(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"./cmd/sdctl", []string{"go.etcd.io/", "github.com/hashicorp/consul/", "github.com/sdctl/sdctl/backends/consul", "github.com/sdctl/sdctl/backends/etcd",
			"github.com/docker/", "github.com/sdctl/sdctl/internal/watch",
			"github.com/hashicorp/go-plugin", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc", "runtime/metrics"}},
		{"./cmd/sdctl-plugin-host", []string{"go.etcd.io/", "github.com/hashicorp/consul/", "github.com/sdctl/sdctl/backends/consul", "github.com/sdctl/sdctl/backends/etcd",
			"github.com/docker/", "github.com/sdctl/sdctl/internal/watch"}},
		{"./cmd/sdctl-watch", []string{"go.etcd.io/", "github.com/hashicorp/consul/", "github.com/sdctl/sdctl/backends/consul", "github.com/sdctl/sdctl/backends/etcd",
			"github.com/hashicorp/go-plugin", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc"}},
		{"./cmd/sdctl-backend-consul", []string{"go.etcd.io/", "github.com/docker/", "github.com/spf13/cobra",
			"github.com/hashicorp/go-plugin", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc"}},
		// The etcd client speaks gRPC to etcd; only go-plugin is kept out.
		{"./cmd/sdctl-backend-etcd", []string{"github.com/hashicorp/consul/", "github.com/docker/", "github.com/spf13/cobra",
			"github.com/hashicorp/go-plugin", "github.com/sdctl/sdctl/plugins/proto/rpc"}},
	} {
		cmd := exec.Command("go", "list", "-deps", tc.pkg)
		cmd.Dir = testutil.ModuleRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tc.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range tc.forbidden {
				// The dependency-free option schemas (backends/*/…opts) are what sdctl may link.
				if strings.HasPrefix(dep, f) && !strings.HasSuffix(dep, "opts") {
					t.Errorf("%s links %s", tc.pkg, dep)
				}
			}
		}
	}
}
