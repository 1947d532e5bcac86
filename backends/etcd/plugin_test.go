package etcd

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// startPlugin starts the backend in a plugin subprocess and configures it with section.
func startPlugin(t *testing.T, section map[string]any) (*host.Client, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts plugin processes; skipped with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &host.Host{
		Builtins:     []plugins.Backend{pluginBackend()},
		Executable:   exe,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Error}),
		StartTimeout: 20 * time.Second,
	}
	c, err := plugins.StartNamed(h, Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c, c.Configure(ctx, section)
}

// TestThroughPlugin uses the backend in its plugin process, as sdctl does: every method once,
// on one process (each start of the race-enabled test binary costs about a second, so the full
// suite runs in-process in TestConformance, and through the plugin boundary for the file
// backend in the plugins package).
func TestThroughPlugin(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	c, err := startPlugin(t, map[string]any{"endpoints": m.ClientURL, "prefix": randomPrefix(t)})
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	ctx := ctxFor(t, time.Minute)
	info, err := c.Info(ctx)
	if err != nil || info.Name != Name || !info.Has(registry.CapTTL) || !info.Has(registry.CapWatch) {
		t.Fatalf("Info = %+v, %v", info, err)
	}

	events, _ := registrytest.WatchEvents(t, c, registry.WatchRequest{Name: "web"})
	next := func() registry.Event {
		t.Helper()
		return registrytest.NextEvent(t, events, 10*time.Second)
	}
	if ev := next(); len(ev.Instances) != 0 {
		t.Fatalf("first event %+v, want an empty set", ev)
	}

	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Tags: []string{"a"}, TTL: 5 * time.Second}
	if err := c.Register(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if ev := next(); len(ev.Instances) != 1 || ev.Instances[0].TTL != inst.TTL {
		t.Fatalf("event after Register: %+v", ev)
	}
	if err := c.Heartbeat(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	pick := uint64(7)
	got, err := c.Instances(ctx, registry.Query{Name: "web", Tags: []string{"a"}, HealthyOnly: true, Pick: &pick})
	if err != nil || len(got) != 1 || got[0].ID != "web-1" {
		t.Fatalf("Instances = %+v, %v", got, err)
	}
	svcs, err := c.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[0].Passing != 1 {
		t.Fatalf("Services = %+v, %v", svcs, err)
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil || st.Leader == "" || st.Members[0].Details["raft-term"] == "" {
		t.Fatalf("ClusterStatus = %+v, %v", st, err)
	}
	if err := c.Deregister(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); len(ev.Instances) != 0 {
		t.Fatalf("event after Deregister: %+v", ev)
	}
	for what, err := range map[string]error{
		"Deregister": c.Deregister(ctx, "web-1"),
		"Heartbeat":  c.Heartbeat(ctx, "web-1"),
	} {
		if !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("%s of a removed instance: %v, want ErrNotFound", what, err)
		}
	}
	err = c.Register(ctx, registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.1", Port: 80,
		Checks: []registry.Check{{Kind: registry.CheckTCP, Target: "10.0.0.1:80"}}})
	if !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("Register with a check: %v, want ErrUnsupported", err)
	}
}

// TestErrorsThroughPlugin: unavailable and permission denied keep their meaning (and their
// messages stay free of passwords) across the process boundary.
func TestErrorsThroughPlugin(t *testing.T) {
	t.Parallel()
	t.Run("Unavailable", func(t *testing.T) {
		_, err := startPlugin(t, map[string]any{"endpoints": "127.0.0.1:1", "dial-timeout": "300ms"})
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("Configure against nothing: %v, want ErrUnavailable naming the endpoint", err)
		}
	})
	t.Run("Auth", func(t *testing.T) {
		m, _ := etcdtest.StartAuth(t)
		a := m.Auth
		_, err := startPlugin(t, map[string]any{"endpoints": m.ClientURL, "username": a.User, "password": "not-" + a.Password})
		if !errors.Is(err, registry.ErrPermissionDenied) || strings.Contains(err.Error(), a.Password) {
			t.Fatalf("Configure with a wrong password: %v, want ErrPermissionDenied without the password", err)
		}
		c, err := startPlugin(t, map[string]any{"endpoints": m.ClientURL, "username": a.User, "password": a.Password, "prefix": "/elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Register(context.Background(), registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80})
		if !errors.Is(err, registry.ErrPermissionDenied) {
			t.Fatalf("Register outside the role's prefix: %v, want ErrPermissionDenied", err)
		}
	})
	t.Run("BadOption", func(t *testing.T) {
		_, err := startPlugin(t, map[string]any{"dial-timeout": "-1s"})
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != "dial-timeout" {
			t.Fatalf("Configure with a negative dial timeout: %v, want a FieldError for dial-timeout", err)
		}
	})
}
