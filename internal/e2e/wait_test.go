package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestResolveWaitsForARegistryThatStartsLater starts `resolve --wait` while the registry is
// down, as in docker-compose or CI where clients often start first, then starts the registry and
// registers an instance: the wait must keep asking and succeed, not fail at the first refused
// connection. A registry that never comes back is exit 4 at the end of the wait.
func TestResolveWaitsForARegistryThatStartsLater(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (env []string, stop, restart func())
	}{
		{"consul", func(t *testing.T) ([]string, func(), func()) {
			a := consultest.StartDev(t)
			return withEnv(serverEnv(t, "SDCTL_BACKEND=consul"), a.Env()...), a.Stop, func() { a.Restart(t) }
		}},
		{"etcd", func(t *testing.T) ([]string, func(), func()) {
			m := etcdtest.StartSingle(t)
			return serverEnv(t, "SDCTL_BACKEND=etcd", "ETCDCTL_ENDPOINTS="+m.ClientURL), m.Stop, func() { m.Restart(t) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, stop, restart := tc.start(t)
			stop()
			p := startSdctl(t, env, "resolve", "late", "--wait", "90s")
			time.Sleep(time.Second) // let it meet the refused connection
			if p.exited() {
				t.Fatalf("%s gave up while the registry was down: exit %d\nstderr: %s", p, p.code, p.stderr.String())
			}
			restart()
			mustRun(t, env, "register", "late", "10.0.0.1:3000")
			if code := p.wait(t, 60*time.Second); code != 0 || strings.TrimSpace(p.stdout.String()) != "10.0.0.1:3000" {
				t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", p, code, p.stdout.String(), p.stderr.String())
			}
		})
	}
	t.Run("never up", func(t *testing.T) {
		t.Parallel()
		env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+registrytest.ClosedAddr(t))
		_, stderr := runCode(t, env, 4, "resolve", "late", "--wait", "2s")
		if !strings.Contains(stderr, "after waiting 2s") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr: %q", stderr)
		}
	})
}
