package e2e

import (
	"strings"
	"testing"
)

// TestPrintedInstancesReadBack checks that what sdctl prints registers back as the same
// instances, on every backend: `resolve --all -o json | register -f -` and
// `catalog NAME -o yaml | register -f -` after the instances were removed.
func TestPrintedInstancesReadBack(t *testing.T) {
	t.Parallel()
	backends := []contractBackend{fileContractBackend(t)}
	if !testing.Short() {
		backends = append(backends, consulContractBackend(t), etcdContractBackend(t))
	}
	const batch = `[
  {"id": "rt-1", "name": "rt", "address": "10.0.0.1", "port": 3000, "tags": ["v1", "blue"], "meta": {"team": "web", "version": "2.1"}, "weight": 5},
  {"id": "rt-2", "name": "rt", "address": "fd00::2", "port": 3001, "tags": ["v2"]},
  {"name": "rt", "address": "node-3.internal", "port": 3002, "health": "warning", "meta": {"empty": ""}}
]`
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := withEnv(b.env)
			dir := t.TempDir()
			if out, stderr, code := runIn(t, dir, batch, env, "register", "-f", "-"); code != 0 || out != "rt-1\nrt-2\nrt-node-3.internal-3002\n" {
				t.Fatalf("register -f: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
			}
			want := mustRun(t, env, "catalog", "rt", "-o", "json")
			for _, tc := range []struct{ name, print string }{
				{"resolve --all -o json", "resolve rt --all --include-warning -o json"},
				{"catalog -o yaml", "catalog rt -o yaml"},
			} {
				printed := mustRun(t, env, strings.Fields(tc.print)...)
				for _, id := range []string{"rt-1", "rt-2", "rt-node-3.internal-3002"} {
					mustRun(t, env, "deregister", id)
				}
				if out, stderr, code := runIn(t, dir, printed, env, "register", "-f", "-"); code != 0 {
					t.Fatalf("%s | register -f -: exit %d\nprinted: %s\nstdout: %s\nstderr: %s", tc.name, code, printed, out, stderr)
				}
				if got := mustRun(t, env, "catalog", "rt", "-o", "json"); got != want {
					t.Errorf("%s | register -f - did not reproduce the instances:\nbefore: %s\nafter:  %s", tc.name, want, got)
				}
			}
		})
	}
}
