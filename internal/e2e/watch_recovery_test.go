package e2e

// How `sdctl watch` recovers from registry trouble by itself, through the built binary with
// its backend plugin, the real Docker engine and real servers: an outage in which Consul
// answers 503, an agent that restarts empty, a registry that is not up when the watcher
// starts, and etcd keys deleted behind the watcher's back. None of these watchers runs with
// --resync.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// consulProxy starts a proxy to a's HTTP API that will listen on addr once served; it is
// closed when the test ends.
func consulProxy(t *testing.T, a *consultest.Agent, addr string) *harness.HTTPProxy {
	p, err := harness.NewHTTPProxy(a.URL(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// registrations counts the service registrations that reached p.
func registrations(p *harness.HTTPProxy) int {
	return p.Count(http.MethodPut + " /v1/agent/service/register")
}

// metric reads one unlabelled series from a watcher's /metrics.
func metric(t *testing.T, listen, name string) float64 {
	t.Helper()
	body, err := httpGetBody("http://" + listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			var v float64
			fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

func healthz(listen string) (int, string) {
	resp, err := httpClient.Get("http://" + listen + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// TestWatchConsul503Outage: while Consul answers 503, a container that waits for its
// registration is tried on one schedule, however many events it sends; once Consul answers
// again, the registry converges to what runs.
func TestWatchConsul503Outage(t *testing.T) {
	w := newWatchEnv(t)
	a := consultest.StartDev(t)
	proxy := consulProxy(t, a, freeAddr(t))
	if err := proxy.Serve(); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	p := w.start(serverEnv(t), w.watchArgs("--listen", listen, "consul://"+proxy.Addr)...)
	first := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(first, "3000"))

	proxy.SetFailing(true)
	before := registrations(proxy)
	events := metric(t, listen, "sdctl_watch_docker_events_total")
	second := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	eventually(t, 20*time.Second, func() error {
		if registrations(proxy) == before {
			return fmt.Errorf("no registration tried yet")
		}
		return nil
	})
	start := time.Now()
	ctx := context.Background()
	// Each pause and unpause is checked in the container's state before the next one, so that
	// an engine slow to settle one (its answer can come before the freezer has) still yields
	// exactly 10 pause and 10 unpause events.
	setPaused := func(want bool) {
		eventually(t, 10*time.Second, func() error {
			c, err := w.cli.ContainerInspect(ctx, second.ID)
			if err != nil || c.State.Paused == want {
				return err
			}
			if want {
				err = w.cli.ContainerPause(ctx, second.ID)
			} else {
				err = w.cli.ContainerUnpause(ctx, second.ID)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("paused=%t asked; checking the state again", want)
		})
	}
	for range 10 {
		setPaused(true)
		setPaused(false)
	}
	eventually(t, 20*time.Second, func() error {
		if n := metric(t, listen, "sdctl_watch_docker_events_total"); n < events+21 {
			return fmt.Errorf("%v events seen, want %v", n, events+21)
		}
		return nil
	})
	tries := registrations(proxy) - before
	elapsed := time.Since(start)
	// One schedule: 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s, then every 5 s; it cannot go faster.
	if limit := int(1 + 6 + elapsed/(5*time.Second) + 1); tries > limit {
		t.Errorf("%d registrations reached Consul in %s of outage, want at most %d", tries, elapsed.Round(time.Millisecond), limit)
	}
	if code, body := healthz(listen); code == http.StatusOK {
		t.Errorf("/healthz answered %d %q during the outage", code, body)
	}

	proxy.SetFailing(false)
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(first, "3000"), w.id(second, "3000"))
	eventually(t, 20*time.Second, func() error {
		if code, body := healthz(listen); code != http.StatusOK {
			return fmt.Errorf("/healthz: %d %s", code, body)
		}
		return nil
	})
	if !strings.Contains(p.stderr.String(), "registry answers again") {
		t.Errorf("no log line about the registry's return")
	}
}

// TestWatchConsulRestartedEmpty: a Consul agent SIGKILLed and started again without its data
// is refilled with what runs.
func TestWatchConsulRestartedEmpty(t *testing.T) {
	w := newWatchEnv(t)
	a := consultest.StartDev(t)
	p := w.start(serverEnv(t), w.watchArgs("consul://"+a.HTTPAddr)...)
	var ids []string
	for range 5 {
		c := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
		ids = append(ids, w.id(c, "3000"))
	}
	waitConsulIDs(t, a, w.node, 20*time.Second, ids...)

	a.RestartEmpty(t)
	waitConsulIDs(t, a, w.node, 30*time.Second, ids...)
	logs := p.stderr.String()
	if !strings.Contains(logs, "reason=registry-changed") && !strings.Contains(logs, "reason=registry-back") {
		t.Errorf("no reconcile for the registry's loss:\n%s", logs)
	}
}

// TestWatchWaitsForConsul: a watcher started before its registry waits for it, with /healthz
// not ready, and registers what started meanwhile; --retry-attempts bounds the wait.
func TestWatchWaitsForConsul(t *testing.T) {
	w := newWatchEnv(t)
	env := serverEnv(t)

	_, stderr := runCode(t, env, 4, w.watchArgs("--retry-attempts", "2", "--retry-interval", "100ms", "consul://"+registrytest.ClosedAddr(t))...)
	if n := strings.Count(stderr, "registry not ready, retrying"); n != 2 {
		t.Errorf("%d retry lines for --retry-attempts 2, want 2:\n%s", n, stderr)
	}

	a := consultest.StartDev(t)
	proxy := consulProxy(t, a, freeAddr(t))
	listen := freeAddr(t)
	p := w.start(env, w.watchArgs("--listen", listen, "consul://"+proxy.Addr)...)
	waitLog(t, p, "connection refused")
	early := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	if code, body := healthz(listen); code == http.StatusOK {
		t.Errorf("/healthz answered %d %q before the registry was up", code, body)
	}

	// Consul listening but not able to serve yet.
	proxy.SetFailing(true)
	if err := proxy.Serve(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "503")
	if p.exited() {
		t.Fatalf("the watcher exited while waiting:\n%s", p.stderr.String())
	}

	proxy.SetFailing(false)
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(early, "3000"))
	eventually(t, 20*time.Second, func() error {
		if code, body := healthz(listen); code != http.StatusOK {
			return fmt.Errorf("/healthz: %d %s", code, body)
		}
		return nil
	})
}

// TestWatchEtcdKeysDeleted: instance keys deleted from etcd behind the watcher's back are
// written again, once each.
func TestWatchEtcdKeysDeleted(t *testing.T) {
	w := newWatchEnv(t)
	e := etcdtest.StartSingle(t)
	cli := etcdtest.Client(t, e)
	addr := strings.TrimPrefix(e.ClientURL, "http://")
	name := "db-" + strings.ToLower(strings.ReplaceAll(w.node, "_", "-"))
	w.start(serverEnv(t), append(w.watchArgs("-internal"), "etcd://"+addr+"/services")...)
	var want []string
	for range 2 {
		c := w.run(dockertest.Spec{Env: []string{"SERVICE_5432_NAME=" + name, "SERVICE_3000_IGNORE=1"}, Expose: []string{"5432"}})
		want = append(want, "/services/"+name+"/"+w.id(c, "5432"))
	}
	slices.Sort(want)
	keys := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/services/"+name+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		var have []string
		for _, kv := range resp.Kvs {
			have = append(have, string(kv.Key))
		}
		if !slices.Equal(have, want) {
			return fmt.Errorf("etcd has %v, want %v", have, want)
		}
		return nil
	}
	eventually(t, 20*time.Second, keys)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := cli.Delete(ctx, "/services/", clientv3.WithPrefix())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, keys)
}

// TestWatchConsulGRPCCheckOverTLS: SERVICE_CHECK_GRPC_USE_TLS gives the instance a gRPC check
// that Consul runs over TLS, as Registrator's did; without it the check is plaintext. The
// containers serve plain HTTP, so Consul's TLS handshake fails, and its output says so.
func TestWatchConsulGRPCCheckOverTLS(t *testing.T) {
	w := newWatchEnv(t)
	a := consultest.StartDev(t)
	w.start(serverEnv(t), w.watchArgs("consul://"+a.HTTPAddr)...)
	grpc := []string{"SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_INTERVAL=1s"}
	tls := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"},
		Env: append(slices.Clone(grpc), "SERVICE_CHECK_GRPC_USE_TLS=true", "SERVICE_CHECK_TLS_SKIP_VERIFY=true")})
	plain := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: grpc})
	tlsID, plainID := w.id(tls, "3000"), w.id(plain, "3000")
	waitConsulIDs(t, a, w.node, 20*time.Second, tlsID, plainID)

	outputs := map[string]string{}
	eventually(t, 20*time.Second, func() error {
		var checks map[string]struct {
			ServiceID, Type, Output string
		}
		if err := consulGet(a, "/v1/agent/checks", &checks); err != nil {
			return err
		}
		for _, c := range checks {
			if c.Type != "grpc" {
				continue
			}
			outputs[c.ServiceID] = c.Output
		}
		if outputs[tlsID] == "" || outputs[plainID] == "" {
			return fmt.Errorf("gRPC check outputs so far: %v", outputs)
		}
		return nil
	})
	t.Logf("gRPC check outputs: %q", outputs)
	if !strings.Contains(outputs[tlsID], "tls:") {
		t.Errorf("the check of %s did not try TLS: %q", tlsID, outputs[tlsID])
	}
	if strings.Contains(outputs[plainID], "tls:") {
		t.Errorf("the check of %s tried TLS: %q", plainID, outputs[plainID])
	}
}
