package consul

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
)

// fakeServer serves h on a loopback port until the test ends.
func fakeServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// endless writes body forever, until the client goes away.
func endless(w http.ResponseWriter, r *http.Request, body []byte) {
	for r.Context().Err() == nil {
		if _, err := w.Write(body); err != nil {
			return
		}
	}
}

// TestNotConsul points the backend at servers that are not Consul: every call fails as
// unavailable (exit code 4) with one line that says so, and nothing is reported done.
func TestNotConsul(t *testing.T) {
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000}
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
		// writes is what writes say instead of want, when it differs. "done": the server
		// sends Consul's headers and a short, complete answer, so it passes for Consul: a
		// write's answer is its status (Consul's own clients read no more).
		writes string
	}{
		{"404 everywhere", http.NotFound, "does not answer like a Consul agent", ""},
		{"200 HTML", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<!doctype html><html><body>It works!</body></html>"))
		}, "does not answer like a Consul agent", ""},
		{"200 empty", func(http.ResponseWriter, *http.Request) {}, "does not answer like a Consul agent", ""},
		{"wrong JSON shape", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}, "does not answer like a Consul agent", ""},
		{"wrong JSON shape with Consul's headers", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Consul-Index", "7")
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}, "does not answer like a Consul agent (unexpected answer", "done"},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			endless(w, r, []byte(strings.Repeat("<p>hello</p>", 1000)))
		}, "does not answer like a Consul agent", ""},
		{"endless JSON with Consul's headers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Consul-Index", "7")
			_, _ = w.Write([]byte("["))
			endless(w, r, []byte(strings.Repeat(`{"Node":{"Node":"n"}},`, 1000)))
			// A write's answer must end too: Register is refused at its answer, Heartbeat and
			// Deregister then look the owner up in the catalog, whose answer is too large.
		}, "answer too large (over 32 MiB)", "does not answer like a Consul agent (the answer to PUT /v1/agent/service/register is over 64 KiB|answer too large (over 32 MiB)"},
		{"TLS port", func(w http.ResponseWriter, _ *http.Request) {
			// What Go's (and so Consul's) HTTPS server answers to plain HTTP.
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("Client sent an HTTP request to an HTTPS server.\n"))
		}, "the server speaks TLS (use an https:// address)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.h)
			b := open(t, nil, addr)
			ctx := testCtx(t, 30*time.Second)
			for what, call := range map[string]func() error{
				"Register":      func() error { return b.Register(ctx, inst) },
				"Instances":     func() error { _, err := b.Instances(ctx, registry.Query{Name: "web", HealthyOnly: true}); return err },
				"Services":      func() error { _, err := b.Services(ctx); return err },
				"Heartbeat":     func() error { return b.Heartbeat(ctx, "web-1") },
				"Deregister":    func() error { return b.Deregister(ctx, "web-1") },
				"ClusterStatus": func() error { _, err := b.ClusterStatus(ctx); return err },
			} {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				err := call()
				runtime.ReadMemStats(&after)
				// A call reads at most MaxAnswer, which the JSON decoder buffers whole, doubling
				// its buffer on the way: about 4 × MaxAnswer allocated in all, far from the
				// 600 MB an uncapped endless body took.
				if grown := after.TotalAlloc - before.TotalAlloc; grown > 5*MaxAnswer {
					t.Errorf("%s allocated %d MiB", what, grown>>20)
				}
				want := tc.want
				if tc.writes != "" && (what == "Register" || what == "Heartbeat" || what == "Deregister") {
					if tc.writes == "done" {
						continue
					}
					want = tc.writes
				}
				if !errors.Is(err, registry.ErrUnavailable) || errors.Is(err, registry.ErrNotFound) ||
					!containsOneOf(err.Error(), want) || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: %v, want one line, unavailable, naming %s and saying %q", what, err, addr, want)
				}
			}
		})
	}
}

// containsOneOf reports whether s contains one of the |-separated parts of want.
func containsOneOf(s, want string) bool {
	return slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(s, w) })
}

// TestSlowBody: a server that sends Consul's headers and then a byte now and then is cut off
// at the caller's deadline, for reads and for writes: a write whose answer never ends is not
// acknowledged.
func TestSlowBody(t *testing.T) {
	addr := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Consul-Index", "7")
		w.WriteHeader(http.StatusOK)
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	b := open(t, func(o *Options) { o.AttemptTimeout = 50 * time.Millisecond }, addr)
	for what, call := range map[string]func(context.Context) error{
		"Instances": func(ctx context.Context) error { _, err := b.Instances(ctx, registry.Query{Name: "web"}); return err },
		"Register": func(ctx context.Context) error {
			return b.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1})
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within 1.4s") {
			t.Errorf("%s from a slow body: %v, want unavailable after 1.4s of the 1.5s", what, err)
		}
		if took > 1500*time.Millisecond {
			t.Errorf("%s from a slow body took %v, more than the 1.5s deadline", what, took)
		}
	}
}

// blackholeAddr returns a loopback address whose connections are never established: a
// listening socket whose accept queue is full, so the kernel drops further SYNs, as a
// firewall that drops packets does.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "blackhole")
	t.Cleanup(func() { f.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue; the first connection that cannot be made shows it is full.
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("the accept queue of %s did not fill up", addr)
	return ""
}

// TestTimeoutSplit pins how the caller's deadline is shared between addresses that do not
// answer: the last gets all that remains, the others an equal share at most.
func TestTimeoutSplit(t *testing.T) {
	t.Run("OneBlackholedAddressGetsAllOfIt", func(t *testing.T) {
		addr := blackholeAddr(t)
		// attempt-timeout (2s by default) does not cut the only address short.
		b := open(t, nil, addr)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		err := b.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1})
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr+": did not answer within 2.9s") {
			t.Errorf("Register on a blackholed address: %v, want 2.9s of the 3s", err)
		}
	})
	t.Run("TwoAddressesShareIt", func(t *testing.T) {
		a1, a2 := blackholeAddr(t), blackholeAddr(t)
		b := open(t, func(o *Options) { o.AttemptTimeout = time.Minute }, a1, a2)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := b.Instances(ctx, registry.Query{Name: "web"})
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), a1+": did not answer within 1s") || !strings.Contains(err.Error(), a2+": did not answer within") {
			t.Errorf("Instances on two blackholed addresses: %v, want 1s for the first and the rest for the second", err)
		}
	})
	t.Run("AttemptTimeoutBoundsTheFirst", func(t *testing.T) {
		a1, a2 := blackholeAddr(t), blackholeAddr(t)
		b := open(t, func(o *Options) { o.AttemptTimeout = 200 * time.Millisecond }, a1, a2)
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		_, err := b.Instances(ctx, registry.Query{Name: "web"})
		// The second gets what remains of the 1.5s: about 1.3s, less on a loaded machine.
		if !strings.Contains(err.Error(), a1+": did not answer within 200ms") || !strings.Contains(err.Error(), a2+": did not answer within 1.") {
			t.Errorf("Instances on two blackholed addresses: %v, want 200ms for the first and the rest for the second", err)
		}
	})
}

// TestFrozenAgent stops a real agent with SIGSTOP: calls end at the caller's deadline as
// unavailable, and deregistration names the agent it waited for.
func TestFrozenAgent(t *testing.T) {
	a := consultest.StartDev(t)
	b := open(t, nil, a.HTTPAddr)
	ctx := testCtx(t, time.Minute)
	if err := b.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	thaw := a.Freeze(t)
	for what, call := range map[string]func(context.Context) error{
		"Instances": func(ctx context.Context) error { _, err := b.Instances(ctx, registry.Query{Name: "web"}); return err },
		"Register": func(ctx context.Context) error {
			return b.Register(ctx, registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.1", Port: 2})
		},
		"Deregister": func(ctx context.Context) error { return b.Deregister(ctx, "web-1") },
	} {
		cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		err := call(cctx)
		cancel()
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), a.HTTPAddr) {
			t.Errorf("%s on a frozen agent: %v, want unavailable naming %s", what, err, a.HTTPAddr)
		}
		if what == "Deregister" && !strings.Contains(err.Error(), "the agent at "+a.HTTPAddr) {
			t.Errorf("Deregister on a frozen agent: %v, want it to name the agent", err)
		}
	}
	thaw()
	// The agent resumes with the requests that waited in its socket, the deregistration
	// among them, so web-1 may be gone already: an unanswered write has an unknown outcome.
	if err := b.Deregister(ctx, "web-1"); err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Deregister after SIGCONT: %v", err)
	}
	if insts, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil || slices.ContainsFunc(insts, func(i registry.Instance) bool { return i.ID == "web-1" }) {
		t.Errorf("after SIGCONT and Deregister: %+v, %v; want web-1 gone", insts, err)
	}
}

// TestFrozenOwnerFoundInCatalog: the instance is on another node, found in the catalog, whose
// agent takes connections and never answers (a frozen agent). Deregistration and heartbeats
// wait for it until the deadline and name it with its node; the instance is not removed
// through another agent.
func TestFrozenOwnerFoundInCatalog(t *testing.T) {
	a, b, ctx := devBackend(t, time.Minute)
	_, port, err := net.SplitHostPort(a.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	// The owner's agent: a listener on another loopback address and the port of the agent in
	// use (where sdctl looks for a node's agent) that never accepts, so connections wait in
	// its queue as they do in a process stopped with SIGSTOP.
	owner := net.JoinHostPort("127.0.0.2", port)
	l, err := net.Listen("tcp", owner)
	if err != nil {
		testutil.SkipUnlessRequired(t, "no second loopback address: "+err.Error())
	}
	t.Cleanup(func() { l.Close() })
	apiCall(t, a, http.MethodPut, "/v1/catalog/register", map[string]any{
		"Node": "far-node", "Address": "127.0.0.2",
		"Service": map[string]any{"ID": "far-1", "Service": "far", "Port": 3000},
	}, nil)

	for what, call := range map[string]func(context.Context) error{
		"Deregister": func(ctx context.Context) error { return b.Deregister(ctx, "far-1") },
		"Heartbeat":  func(ctx context.Context) error { return b.Heartbeat(ctx, "far-1") },
	} {
		cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		err := call(cctx)
		cancel()
		want := "consul: instance far-1: the agent at " + owner + " (node far-node) did not answer in time"
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || err.Error() != want {
			t.Errorf("%s with a frozen owner: %v, want unavailable: %s", what, err, want)
		}
	}
	var nodes []struct{ Node string }
	apiCall(t, a, http.MethodGet, "/v1/catalog/service/far", nil, &nodes)
	if len(nodes) != 1 || nodes[0].Node != "far-node" {
		t.Errorf("catalog after the failed deregistration: %+v, want far-1 still on far-node", nodes)
	}
}

// TestUnixSocket registers and resolves through the agent's unix socket.
func TestUnixSocket(t *testing.T) {
	a := consultest.StartDev(t)
	// A unix socket that forwards to the agent's TCP port stands for the agent's own
	// (consultest does not configure one).
	sock := filepath.Join(t.TempDir(), "consul.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go forward(l, a.HTTPAddr)
	b := open(t, nil, "unix://"+sock)
	ctx := testCtx(t, 30*time.Second)
	id := "odd:id;with+chars=@ü"
	if err := b.Register(ctx, registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: 1, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, id); err != nil {
		t.Errorf("Heartbeat(%q): %v", id, err)
	}
	insts, err := b.Instances(ctx, registry.Query{Name: "web"})
	if err != nil || len(insts) != 1 || insts[0].ID != id {
		t.Errorf("Instances through %s: %+v, %v", sock, insts, err)
	}
	if err := b.Deregister(ctx, id); err != nil {
		t.Errorf("Deregister(%q): %v", id, err)
	}
}

// forward copies every connection accepted on l to addr.
func forward(l net.Listener, addr string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() { copyConn(up, c); close(done) }()
			copyConn(c, up)
			<-done
		}()
	}
}

func copyConn(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// TestUnknownTokenClusterStatus: a token Consul does not know is a permission error for
// cluster status too, not a status with notes.
func TestUnknownTokenClusterStatus(t *testing.T) {
	a, _ := consultest.StartACL(t)
	b := open(t, func(o *Options) { o.Token = "00000000-1111-2222-3333-444444444444" }, a.HTTPAddr)
	_, err := b.ClusterStatus(testCtx(t, 30*time.Second))
	if !errors.Is(err, registry.ErrPermissionDenied) || !strings.Contains(err.Error(), "not known to Consul") {
		t.Errorf("ClusterStatus with an unknown token: %v, want permission denied", err)
	}
}

// TestClusterStatusWithoutLeader asks a server that has never had a leader (it waits for a
// second server): the status has no leader (exit code 6) and lists the server from gossip,
// within two attempt-timeouts, though Consul holds the reads that need a leader for 7s.
func TestClusterStatusWithoutLeader(t *testing.T) {
	skipShort(t, "starts a Consul server")
	t.Parallel()
	a := consultest.StartLeaderless(t)
	b := open(t, func(o *Options) { o.AttemptTimeout = time.Second }, a.HTTPAddr)
	start := time.Now()
	st, err := b.ClusterStatus(testCtx(t, 10*time.Second))
	took := time.Since(start)
	if err != nil || st.Leader != "" || len(st.Members) != 1 || st.Members[0].Name != a.Name || st.Members[0].Health != "alive" {
		t.Fatalf("ClusterStatus without a leader: %+v, %v; want no leader and %s alive", st, err, a.Name)
	}
	if !slices.ContainsFunc(st.Notes, func(n string) bool { return strings.Contains(n, "the cluster has no leader") }) {
		t.Errorf("notes %q, want one saying the cluster has no leader", st.Notes)
	}
	if took > 3*time.Second {
		t.Errorf("ClusterStatus without a leader took %v, want at most two attempt-timeouts (1s)", took)
	}
}

// TestHTTPAuth goes through a proxy that wants basic authentication (http-auth,
// CONSUL_HTTP_AUTH) in front of a real agent.
func TestHTTPAuth(t *testing.T) {
	a := consultest.StartDev(t)
	target, err := url.Parse("http://" + a.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	addr := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret:pw" {
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	ctx := testCtx(t, 30*time.Second)
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1}

	err = open(t, nil, addr).Register(ctx, inst)
	if !errors.Is(err, registry.ErrPermissionDenied) || !strings.Contains(err.Error(), "CONSUL_HTTP_AUTH") {
		t.Errorf("Register without http-auth: %v, want permission denied and a word on http-auth", err)
	}
	err = open(t, func(o *Options) { o.HTTPAuth = "alice:wrong-s3cret" }, addr).Register(ctx, inst)
	if !errors.Is(err, registry.ErrPermissionDenied) || strings.Contains(err.Error(), "wrong-s3cret") {
		t.Errorf("Register with wrong http-auth: %v, want permission denied without the password", err)
	}
	b := open(t, func(o *Options) { o.HTTPAuth = "alice:s3cret:pw" }, addr)
	if err := b.Register(ctx, inst); err != nil {
		t.Fatalf("Register with http-auth: %v", err)
	}
	if insts, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(insts) != 1 {
		t.Errorf("Instances with http-auth: %+v, %v", insts, err)
	}
}
