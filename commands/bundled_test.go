package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sdctl knows the bundled backends' config keys and variables without their executables (the
// test binary has none beside it), and a command that needs one says what is missing.
func TestBundledBackendWithoutItsExecutable(t *testing.T) {
	home := sandbox(t)
	t.Setenv("CONSUL_HTTP_ADDR", "10.1.1.1:8500")
	t.Setenv("ETCDCTL_ENDPOINTS", "10.2.2.2:2379")
	if out := mustRun(t, "--backend", "consul", "config", "view"); !strings.Contains(out, "address: 10.1.1.1:8500 # env CONSUL_HTTP_ADDR") {
		t.Errorf("config view --backend consul does not show CONSUL_HTTP_ADDR:\n%s", out)
	}
	if out := mustRun(t, "--backend", "etcd", "config", "view"); !strings.Contains(out, "10.2.2.2:2379") {
		t.Errorf("config view --backend etcd does not show ETCDCTL_ENDPOINTS:\n%s", out)
	}

	r := sdctl(t, "--backend", "consul", "resolve", "web")
	if r.code != ExitError || !strings.Contains(r.stderr, "sdctl-backend-consul is missing") || !strings.Contains(r.stderr, "go install github.com/sdctl/sdctl/cmd/...") {
		t.Errorf("resolve with the consul executable missing: exit %d, stderr %q; want exit 1 naming the file and how to install it", r.code, r.stderr)
	}
	if out := mustRun(t, "backend", "list", "--template", "{{.Name}} {{.Kind}} {{.Status}}\n"); !strings.Contains(out, "consul bundled missing") || !strings.Contains(out, "etcd bundled missing") {
		t.Errorf("backend list:\n%s", out)
	}

	if err := os.WriteFile(filepath.Join(home, "sdctl.yaml"), []byte("etcd:\n  endpoint: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = sdctl(t, "config", "view")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `invalid etcd.endpoint`) || !strings.Contains(r.stderr, `"endpoints"`) {
		t.Errorf("unknown etcd key in the config file: exit %d, stderr %q; want exit 2 suggesting endpoints", r.code, r.stderr)
	}
}
