package consul

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestTTLCheckAndGRPCTLS checks what reaches Consul for a TTL with an initial status and a
// deregister-after (a registry.CheckTTL), and for a gRPC check over TLS that accepts any
// certificate.
func TestTTLCheckAndGRPCTLS(t *testing.T) {
	skipShort(t, "starts a Consul server")
	t.Parallel()
	a := consultest.StartDev(t)
	// A proxy in front of the agent keeps the registrations sdctl sends: Consul's API does not
	// show a check's deregister-after or gRPC TLS settings back.
	var (
		mu   sync.Mutex
		sent []string
	)
	target, err := url.Parse(a.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/agent/service/register") {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			sent = append(sent, string(body))
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	b := open(t, nil, proxy.Listener.Addr().String())
	ctx := testCtx(t, 60*time.Second)

	ttl := registry.Instance{ID: "ttl-1", Name: "ttl", Address: "127.0.0.1", Port: 8080, TTL: 30 * time.Second,
		Checks: []registry.Check{{Kind: registry.CheckTTL, InitialStatus: registry.HealthCritical, DeregisterAfter: 2 * time.Minute}}}
	if err := b.Register(ctx, ttl); err != nil {
		t.Fatal(err)
	}
	grpc := registry.Instance{ID: "grpc-1", Name: "grpc", Address: "127.0.0.1", Port: 8081,
		Checks: []registry.Check{{Kind: registry.CheckGRPC, Target: "127.0.0.1:8081", Interval: time.Minute, GRPCUseTLS: true, TLSSkipVerify: true}}}
	if err := b.Register(ctx, grpc); err != nil {
		t.Fatal(err)
	}
	type check struct {
		CheckID string
		Status  string
		Type    string
	}
	// The catalog carries each check's definition once the agent has synced it.
	checks := map[string]check{}
	registrytest.Eventually(t, 20*time.Second, poll, func() error {
		for _, svc := range []string{"ttl", "grpc"} {
			var list []check
			apiCall(t, a, http.MethodGet, "/v1/health/checks/"+svc, nil, &list)
			if len(list) == 0 {
				return fmt.Errorf("no checks of %s in the catalog yet", svc)
			}
			for _, c := range list {
				checks[c.CheckID] = c
			}
		}
		return nil
	})

	c, ok := checks[ttlCheckID("ttl-1")]
	if !ok {
		t.Fatalf("no TTL check for ttl-1 in %v", checks)
	}
	if c.Status != "critical" || c.Type != "ttl" {
		t.Errorf("TTL check: status %q type %q, want critical ttl", c.Status, c.Type)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || !strings.Contains(sent[0], `"DeregisterCriticalServiceAfter":"2m0s"`) {
		t.Errorf("the TTL registration does not carry DeregisterCriticalServiceAfter 2m0s: %v", sent)
	}
	if len(sent) != 2 || !strings.Contains(sent[1], `"GRPCUseTLS":true`) || !strings.Contains(sent[1], `"TLSSkipVerify":true`) {
		t.Errorf("the grpc registration does not carry GRPCUseTLS and TLSSkipVerify: %v", sent)
	}
	if n := len(checks); n != 2 {
		t.Errorf("%d checks, want 2 (the ttl check folds into the TTL check)", n)
	}
	if h := registrytest.HealthOf(ctx, t, b, "ttl", "ttl-1"); h != registry.HealthCritical {
		t.Errorf("ttl-1 is %s before its first heartbeat, want critical", h)
	}
	if err := b.Heartbeat(ctx, "ttl-1"); err != nil {
		t.Fatal(err)
	}
	if h := registrytest.HealthOf(ctx, t, b, "ttl", "ttl-1"); h != registry.HealthPassing {
		t.Errorf("ttl-1 is %s after a heartbeat, want passing", h)
	}

	if g, ok := checks[ttlCheckID("grpc-1")+":1"]; !ok || g.Type != "grpc" {
		t.Errorf("no grpc check for grpc-1 in %v", checks)
	}
}
