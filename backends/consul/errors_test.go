package consul

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ssl  bool
		want string // URL, or "" for an error
	}{
		{"127.0.0.1:8500", false, "http://127.0.0.1:8500"},
		{"http://127.0.0.1:8500", false, "http://127.0.0.1:8500"},
		{"HTTPS://consul.example", false, "https://consul.example:8501"},
		{"consul.example", false, "http://consul.example:8500"},
		{"consul.example", true, "https://consul.example:8501"},
		{"http://consul.example", true, "http://consul.example:8500"},
		{"[::1]:8500", false, "http://[::1]:8500"},
		{"[::1]", false, "http://[::1]:8500"},
		{"::1", false, "http://[::1]:8500"},
		{"http://10.0.0.1:8500/", false, "http://10.0.0.1:8500"},
		{"", false, ""},
		{"http://", false, ""},
		{"10.0.0.1:0", false, ""},
		{"10.0.0.1:http", false, ""},
		{"user@10.0.0.1:8500", false, ""},
		{"http://10.0.0.1:8500/v1", false, ""},
		{"10.0.0.1:8500?x", false, ""},
		{"unix:///tmp/consul.sock", false, "unix:///tmp/consul.sock"},
		{"unix://consul.sock", false, ""},
		{"tcp://10.0.0.1:8500", false, ""},
		{"bad host:8500", false, ""},
	} {
		ep, err := parseAddress(tc.in, tc.ssl)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("parseAddress(%q) = %s, want an error", tc.in, ep.base)
		case tc.want == "" && !errors.Is(err, registry.ErrInvalid):
			t.Errorf("parseAddress(%q) error %v is not ErrInvalid", tc.in, err)
		case tc.want != "" && err != nil:
			t.Errorf("parseAddress(%q): %v", tc.in, err)
		case tc.want != "" && ep.base.String() != tc.want:
			t.Errorf("parseAddress(%q) = %s, want %s", tc.in, ep.base, tc.want)
		}
	}
}

func TestStatusError(t *testing.T) {
	const token = "5e2b8c1a-0d6f-4c1e-9a7b-3f0e2d1c4b5a"
	ep := &endpoint{name: "10.0.0.1:8500"}
	c := &client{token: token}
	for _, tc := range []struct {
		status int
		body   string
		want   error
		text   string
	}{
		{400, "Invalid check: TTL must be > 0", registry.ErrInvalid, "request refused: Invalid check"},
		{403, `Permission denied: token with AccessorID 'abc' lacks permission 'service:write' on "web"`, registry.ErrPermissionDenied, "lacks permission"},
		{403, "ACL not found: " + token, registry.ErrPermissionDenied, "ACL not found: <redacted>"},
		{404, "Unknown service ID", registry.ErrNotFound, "Unknown service ID"},
		{429, "", registry.ErrUnavailable, "rate limited"},
		{500, "No cluster leader", registry.ErrUnavailable, "server error 500: No cluster leader"},
		{503, "", registry.ErrUnavailable, "Service Unavailable"},
	} {
		err := c.statusError(ep, tc.status, tc.body)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) || !strings.HasPrefix(err.Error(), "consul 10.0.0.1:8500: ") {
			t.Errorf("%d %q: %v, want %v containing %q", tc.status, tc.body, err, tc.want, tc.text)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%d: error shows the token: %v", tc.status, err)
		}
	}
	// Without a token the message says where one goes.
	err := (&client{}).statusError(ep, 403, "Permission denied")
	if !strings.Contains(err.Error(), "CONSUL_HTTP_TOKEN") {
		t.Errorf("403 without a token: %v", err)
	}
}

// silentAddr returns a loopback address that accepts connections and never answers, like a
// hung server.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestUnreachable(t *testing.T) {
	t.Run("Refused", func(t *testing.T) {
		addr := registrytest.ClosedAddr(t)
		b := open(t, nil, addr)
		start := time.Now()
		_, err := b.Instances(testCtx(t, 10*time.Second), registry.Query{Name: "web"})
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Instances on a closed port: %v, want ErrUnavailable naming %s", err, addr)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("SilentLastAddressUsesTheDeadline", func(t *testing.T) {
		addr := silentAddr(t)
		b := open(t, func(o *Options) { o.AttemptTimeout = 100 * time.Millisecond }, addr)
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := b.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1})
		d := time.Since(start)
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
			t.Errorf("Register on a silent server: %v, want ErrUnavailable and DeadlineExceeded naming %s", err, addr)
		}
		if d < 600*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %v, want about the context's 700ms", d)
		}
	})

	t.Run("SilentWithoutDeadline", func(t *testing.T) {
		addr := silentAddr(t)
		b := open(t, func(o *Options) { o.AttemptTimeout = 200 * time.Millisecond }, addr)
		_, err := b.Services(t.Context())
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within 200ms") {
			t.Errorf("Services on a silent server: %v", err)
		}
	})

	t.Run("AllAddressesNamed", func(t *testing.T) {
		a1, a2 := registrytest.ClosedAddr(t), silentAddr(t)
		b := open(t, func(o *Options) { o.AttemptTimeout = 100 * time.Millisecond }, a1, a2)
		_, err := b.ClusterStatus(t.Context())
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), a1) || !strings.Contains(err.Error(), a2) {
			t.Errorf("ClusterStatus: %v, want ErrUnavailable naming %s and %s", err, a1, a2)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		b := open(t, nil, silentAddr(t))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := b.Instances(ctx, registry.Query{Name: "web"})
		if !errors.Is(err, context.Canceled) || errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("Instances cancelled: %v, want context.Canceled only", err)
		}
	})

	t.Run("TokenNotInErrors", func(t *testing.T) {
		const token = "3c0ffee0-1111-2222-3333-444455556666"
		addr := registrytest.ClosedAddr(t)
		b := open(t, func(o *Options) { o.Token = token }, addr)
		for _, err := range []error{
			b.Register(t.Context(), registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1}),
			b.Deregister(t.Context(), "web-1"),
			b.Heartbeat(t.Context(), "web-1"),
		} {
			if err == nil || strings.Contains(err.Error(), token) {
				t.Errorf("error %v", err)
			}
		}
	})
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	// A redirect could carry the token to another host; the client reports it instead.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.RedirectHandler("http://198.51.100.1/", http.StatusTemporaryRedirect)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	b := open(t, func(o *Options) { o.Token = "abcd-efgh" }, l.Addr().String())
	_, err = b.Services(t.Context())
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "does not answer like a Consul agent") || !strings.Contains(err.Error(), "307") {
		t.Errorf("Services behind a redirect: %v", err)
	}
}
