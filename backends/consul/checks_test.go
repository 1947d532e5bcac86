package consul

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestChecksRunByConsul registers one instance per check kind and waits for Consul to run
// the checks and report what they found.
func TestChecksRunByConsul(t *testing.T) {
	a, b, ctx := devBackend(t, 90*time.Second)

	// An HTTP endpoint that records how Consul probes it.
	var (
		mu      sync.Mutex
		methods []string
		headers []string
	)
	probed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method)
		headers = append(headers, r.Header.Get("X-Probe"))
		mu.Unlock()
	})
	httpSrv := httptest.NewServer(probed)
	t.Cleanup(httpSrv.Close)
	// A self-signed HTTPS endpoint: passes only with TLS skip verify.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	// 429 means warning to Consul.
	busySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(busySrv.Close)
	grpcAddr := grpcHealthServer(t)

	const every = time.Second
	inst := func(id string, checks ...registry.Check) registry.Instance {
		for i := range checks {
			checks[i].Interval = every
		}
		return registry.Instance{ID: id, Name: "web", Address: "127.0.0.1", Port: 3000, Checks: checks}
	}
	want := map[string]registry.Health{}
	for _, tc := range []struct {
		inst registry.Instance
		want registry.Health
	}{
		{inst("http-1", registry.Check{Kind: registry.CheckHTTP, Target: httpSrv.URL + "/health", Method: "put",
			Header: map[string][]string{"X-Probe": {"sdctl"}}}), registry.HealthPassing},
		{inst("https-1", registry.Check{Kind: registry.CheckHTTP, Target: tlsSrv.URL, TLSSkipVerify: true}), registry.HealthPassing},
		{inst("https-2", registry.Check{Kind: registry.CheckHTTP, Target: tlsSrv.URL}), registry.HealthCritical},
		{inst("busy-1", registry.Check{Kind: registry.CheckHTTP, Target: busySrv.URL}), registry.HealthWarning},
		{inst("tcp-1", registry.Check{Kind: registry.CheckTCP, Target: httpSrv.Listener.Addr().String()}), registry.HealthPassing},
		{inst("tcp-2", registry.Check{Kind: registry.CheckTCP, Target: registrytest.ClosedAddr(t), InitialStatus: registry.HealthPassing}), registry.HealthCritical},
		{inst("grpc-1", registry.Check{Kind: registry.CheckGRPC, Target: grpcAddr}), registry.HealthPassing},
		{inst("grpc-2", registry.Check{Kind: registry.CheckGRPC, Target: grpcAddr + "/not-served"}), registry.HealthCritical},
	} {
		if err := b.Register(ctx, tc.inst); err != nil {
			t.Fatalf("Register(%s): %v", tc.inst.ID, err)
		}
		want[tc.inst.ID] = tc.want
	}

	registrytest.Eventually(t, 30*time.Second, poll, func() error {
		insts, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil {
			return err
		}
		got := map[string]registry.Health{}
		for _, inst := range insts {
			got[inst.ID] = inst.Health
		}
		for id, h := range want {
			if got[id] != h {
				return fmt.Errorf("health %v, want %v", got, want)
			}
		}
		return nil
	})
	mu.Lock()
	if len(methods) == 0 || methods[0] != http.MethodPut || headers[0] != "sdctl" {
		t.Errorf("the http check probed with methods %q and X-Probe headers %q, want PUT and sdctl", methods, headers)
	}
	mu.Unlock()

	healthy := func(q registry.Query) []string {
		t.Helper()
		insts, err := b.Instances(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(insts)
	}
	if got := healthy(registry.Query{Name: "web", HealthyOnly: true}); !slices.Equal(got, []string{"grpc-1", "http-1", "https-1", "tcp-1"}) {
		t.Errorf("healthy instances %q", got)
	}
	if got := healthy(registry.Query{Name: "web", HealthyOnly: true, IncludeWarning: true}); !slices.Equal(got, []string{"busy-1", "grpc-1", "http-1", "https-1", "tcp-1"}) {
		t.Errorf("healthy instances with warning %q", got)
	}

	t.Run("ReRegisterReplacesChecks", func(t *testing.T) {
		// tcp-2 fails its check; registered again without checks it is passing at once.
		if err := b.Register(ctx, registry.Instance{ID: "tcp-2", Name: "web", Address: "127.0.0.1", Port: 3000}); err != nil {
			t.Fatal(err)
		}
		if h := registrytest.HealthOf(ctx, t, b, "web", "tcp-2"); h != registry.HealthPassing {
			t.Errorf("tcp-2 re-registered without checks has health %q", h)
		}
		var checks map[string]struct{ ServiceID string }
		apiCall(t, a, http.MethodGet, "/v1/agent/checks", nil, &checks)
		for id, c := range checks {
			if c.ServiceID == "tcp-2" {
				t.Errorf("check %s of tcp-2 is still registered", id)
			}
		}
	})

	t.Run("ScriptUnsupported", func(t *testing.T) {
		err := b.Register(ctx, inst("script-1", registry.Check{Kind: registry.CheckScript, Target: "/bin/true"}))
		if !errors.Is(err, registry.ErrUnsupported) {
			t.Fatalf("Register with a script check: %v", err)
		}
		if h := registrytest.HealthOf(ctx, t, b, "web", "script-1"); h != "" {
			t.Errorf("script-1 was registered (%s)", h)
		}
	})

	t.Run("DeregisterAfterAccepted", func(t *testing.T) {
		// Consul reaps after a minute at the earliest; here it is enough that it takes the field.
		c := registry.Check{Kind: registry.CheckTCP, Target: registrytest.ClosedAddr(t), DeregisterAfter: time.Minute}
		if err := b.Register(ctx, inst("reaped-1", c)); err != nil {
			t.Fatal(err)
		}
	})
}

// grpcHealthServer serves the standard gRPC health protocol on a loopback port: "" (the
// server) is serving, any other service name is unknown.
func grpcHealthServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}
