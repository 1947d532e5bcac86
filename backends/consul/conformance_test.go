package consul_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/backends/consul"
	"github.com/sdctl/sdctl/internal/bundled/consulplugin"
	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestMain lets the test binary serve the consul backend (as `backend serve consul`, the way
// sdctl serves its built-in one), so the suite also runs through the plugin boundary.
func TestMain(m *testing.M) {
	if code, ok := plugins.ServeBuiltin(os.Args[1:], []plugins.Backend{consulplugin.Backend()}); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// poolSize is how many agents the conformance suite shares: its TTL tests run four subtests
// in parallel, each needing a registry of its own.
const poolSize = 4

// TestConformance runs the suite on the backend in process and through the plugin boundary
// (the built-in entry, started as `backend serve consul`).
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul servers")
	}
	// Starting an agent per subtest would take minutes, so a few agents are shared: each open
	// takes a free one, empties it, and gives it back when the subtest ends.
	pool := make(chan *consultest.Agent, poolSize)
	for range poolSize {
		pool <- consultest.StartDev(t)
	}
	take := func(t *testing.T) *consultest.Agent {
		t.Helper()
		var a *consultest.Agent
		select {
		case a = <-pool:
		case <-t.Context().Done():
			t.Fatal("no free Consul agent")
		}
		t.Cleanup(func() { pool <- a })
		emptyAgent(t, a)
		return a
	}
	opts := registrytest.Options{
		Checks: true,
		TTL:    true,
		Watch:  true,
		// Consul has no lower bound for TTL checks; one second keeps the suite quick.
		MinTTL: time.Second,
		// A check's new status that the agent fails to sync at once reaches the catalog with
		// its next full sync, at most two minutes later.
		HealthLag: 2 * time.Minute,
	}

	opts.Name = "direct"
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		a := take(t)
		b, err := consul.New(map[string]any{"address": a.HTTPAddr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, opts)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hst := &host.Host{Builtins: []plugins.Backend{consulplugin.Backend()}, Executable: exe,
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})}
	opts.Name = "plugin"
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		a := take(t)
		c, err := plugins.StartNamed(hst, consul.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if !c.Candidate.Builtin {
			t.Fatalf("the consul backend is not built in: %+v", c.Candidate)
		}
		if err := c.Configure(context.Background(), map[string]any{"address": a.HTTPAddr}); err != nil {
			t.Fatal(err)
		}
		return c
	}, opts)
}

// emptyAgent deregisters every service registered with the agent and waits until the
// catalog holds only Consul's own service.
func emptyAgent(t *testing.T, a *consultest.Agent) {
	t.Helper()
	var svcs map[string]struct{ ID string }
	request(t, a, http.MethodGet, "/v1/agent/services", &svcs)
	for id := range svcs {
		request(t, a, http.MethodPut, "/v1/agent/service/deregister/"+id, nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var names map[string][]string
		request(t, a, http.MethodGet, "/v1/catalog/services", &names)
		delete(names, "consul")
		if len(names) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the catalog still lists %v", names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func request(t *testing.T, a *consultest.Agent, method, path string, out any) {
	t.Helper()
	resp, err := a.Request(method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s: %s", method, path, resp.Status)
		t.Fatal(b.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
