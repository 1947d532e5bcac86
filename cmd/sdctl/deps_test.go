package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// Every package linked into a binary runs its init in every process, used or not: sdctl must not
// link the backends that ship beside it, the Docker client (sdctl-watch has it), nor go-plugin
// and gRPC (sdctl-plugin-host has them), and each bundled backend links only its own client.
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
		{"./cmd/sdctl-watch", []string{"go.etcd.io/", "github.com/hashicorp/consul/", "github.com/sdctl/sdctl/backends/consul", "github.com/sdctl/sdctl/backends/etcd"}},
		{"./cmd/sdctl-backend-consul", []string{"go.etcd.io/", "github.com/docker/", "github.com/spf13/cobra"}},
		{"./cmd/sdctl-backend-etcd", []string{"github.com/hashicorp/consul/", "github.com/docker/", "github.com/spf13/cobra"}},
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
