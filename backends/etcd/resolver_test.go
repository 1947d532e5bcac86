package etcd

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

// healthServer is a gRPC server with the standard health service that counts the calls it
// answers, so a test can see where a client's requests went.
type healthServer struct {
	addr  *net.TCPAddr
	calls atomic.Int64
}

func startHealthServer(t *testing.T) *healthServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &healthServer{addr: l.Addr().(*net.TCPAddr)}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		hs.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return hs
}

// TestGRPCResolver registers two gRPC servers with sdctl and dials them the way a gRPC program
// using etcd's own resolver does: etcd:///<prefix>/<name>. The resolver must find both, spread
// calls over them, and drop the one sdctl deregisters.
func TestGRPCResolver(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	b := open(t, Options{}, nil, m)
	ctx := ctxFor(t, 60*time.Second)

	s1, s2 := startHealthServer(t), startHealthServer(t)
	for i, s := range []*healthServer{s1, s2} {
		inst := registry.Instance{
			ID: "greeter-" + string(rune('1'+i)), Name: "greeter", Address: "127.0.0.1", Port: s.addr.Port,
			Tags: []string{"grpc"}, Meta: map[string]string{"version": "1"}, TTL: 30 * time.Second,
		}
		if err := b.Register(ctx, inst); err != nil {
			t.Fatalf("Register(%s): %v", inst.ID, err)
		}
	}

	cli := etcdtest.Client(t, m)
	target := b.Prefix() + "/greeter"

	// etcd's endpoint manager reads the same records: keys under the target, Addr host:port.
	em, err := endpoints.NewManager(cli, target)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := em.List(ctx)
	if err != nil {
		t.Fatalf("endpoints List: %v", err)
	}
	if len(eps) != 2 || eps[target+"/greeter-1"].Addr != s1.addr.String() || eps[target+"/greeter-2"].Addr != s2.addr.String() {
		t.Fatalf("endpoints.Manager.List(%s) = %+v", target, eps)
	}
	md, _ := json.Marshal(eps[target+"/greeter-1"].Metadata)
	if !strings.Contains(string(md), `"version":"1"`) {
		t.Errorf("Metadata seen by etcd's endpoint manager = %s, want sdctl's fields", md)
	}

	builder, err := resolver.NewBuilder(cli)
	if err != nil {
		t.Fatal(err)
	}
	// The resolver strips one slash from the URL path, so a prefix starting with "/" makes the
	// target etcd:////prefix/name: exactly "etcd:///" followed by the key prefix.
	conn, err := grpc.NewClient("etcd:///"+target,
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func() {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("health Check through etcd:///%s: %v", target, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health status %v", resp.Status)
		}
	}

	// Round robin reaches both servers once the resolver has reported both.
	deadline := time.Now().Add(20 * time.Second)
	for s1.calls.Load() == 0 || s2.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("calls after 20s: server 1 %d, server 2 %d; want both used", s1.calls.Load(), s2.calls.Load())
		}
		check()
	}

	// After sdctl deregisters server 1, the resolver drops it.
	if err := b.Deregister(ctx, "greeter-1"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		before := s1.calls.Load()
		for range 10 {
			check()
		}
		if s1.calls.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server 1 still receives calls 20s after its deregistration")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
