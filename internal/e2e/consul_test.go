package e2e

// The sdctl binary against real Consul servers (internal/testutil/consultest), configured the
// way a user does it: SDCTL_BACKEND=consul or --backend consul, and Consul's own CONSUL_*
// variables. Without a consul binary these tests skip (fail under SDCTL_TEST_REQUIRE_ALL=1),
// except those that need no server.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// jsonInstance is an instance as `sdctl resolve -o json` prints it.
type jsonInstance struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
	Weight  int               `json:"weight"`
	Health  string            `json:"health"`
}

// lines splits output into its lines, without the final newline.
func lines(out string) []string {
	out = strings.TrimSuffix(out, "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// TestConsul runs the everyday commands against a single Consul server.
func TestConsul(t *testing.T) {
	t.Parallel()
	a := consultest.StartDev(t)
	env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+a.HTTPAddr)

	t.Run("RegisterResolveDeregister", func(t *testing.T) {
		t.Parallel()
		// The instances are two local servers; Consul checks one over HTTP, the other over TCP.
		var status atomic.Int32
		status.Store(http.StatusOK)
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(int(status.Load()))
		}))
		defer web.Close()
		tcp := httptest.NewServer(http.NotFoundHandler())
		defer tcp.Close()
		webAddr, tcpAddr := web.Listener.Addr().String(), tcp.Listener.Addr().String()

		id1 := strings.TrimSpace(mustRun(t, env, "register", "web", webAddr, "--tag", "v1", "--meta", "team=a", "--weight", "3",
			"--check-http", web.URL+"/health", "--check-interval", "1s"))
		if want := "web-" + strings.Replace(webAddr, ":", "-", 1); id1 != want {
			t.Errorf("register printed ID %q, want %q", id1, want)
		}
		id2 := strings.TrimSpace(mustRun(t, env, "register", "web", tcpAddr, "--tag", "v2",
			"--check-tcp", tcpAddr, "--check-interval", "1s"))

		// Consul starts checks as critical; both pass once it has run them.
		want := []string{webAddr, tcpAddr}
		slices.Sort(want)
		eventually(t, 15*time.Second, func() error {
			out, stderr, code := run(t, env, "resolve", "web", "--all")
			got := lines(out)
			slices.Sort(got)
			if code != 0 || !slices.Equal(got, want) {
				return fmt.Errorf("resolve web --all: exit %d, %q (%s), want %q", code, got, stderr, want)
			}
			return nil
		})

		if out := mustRun(t, env, "resolve", "web"); out != webAddr+"\n" && out != tcpAddr+"\n" {
			t.Errorf("resolve web printed %q, want one of %s", out, want)
		}
		if out := mustRun(t, env, "resolve", "web", "--tag", "v1"); out != webAddr+"\n" {
			t.Errorf("resolve web --tag v1 printed %q, want %s", out, webAddr)
		}
		if out := mustRun(t, env, "resolve", "http://web/health?x=a%20b#top", "--tag", "v2"); out != "http://"+tcpAddr+"/health?x=a%20b#top\n" {
			t.Errorf("URL rewrite printed %q", out)
		}

		var insts []jsonInstance
		out := mustRun(t, env, "resolve", "web", "--all", "-o", "json")
		if err := json.Unmarshal([]byte(out), &insts); err != nil {
			t.Fatalf("resolve -o json: %v\n%s", err, out)
		}
		byID := map[string]jsonInstance{}
		for _, in := range insts {
			byID[in.ID] = in
		}
		if in := byID[id1]; in.Name != "web" || net.JoinHostPort(in.Address, fmt.Sprint(in.Port)) != webAddr ||
			!slices.Equal(in.Tags, []string{"v1"}) || in.Meta["team"] != "a" || in.Weight != 3 || in.Health != "passing" {
			t.Errorf("resolve -o json: %s is %+v, want tag v1, team=a, weight 3, passing", id1, in)
		}
		if in := byID[id2]; !slices.Equal(in.Tags, []string{"v2"}) || in.Weight != 1 || in.Health != "passing" {
			t.Errorf("resolve -o json: %s is %+v, want tag v2, weight 1, passing", id2, in)
		}
		var one jsonInstance
		if out := mustRun(t, env, "resolve", "web", "--tag", "v1", "-o", "json"); json.Unmarshal([]byte(out), &one) != nil || one.ID != id1 {
			t.Errorf("resolve -o json without --all printed %s, want the single instance %s", out, id1)
		}

		out = mustRun(t, env, "catalog")
		if !slices.Contains(lines(out), "web\t2\t2\tv1,v2") {
			t.Errorf("catalog printed %q, want the line web 2 2 v1,v2", out)
		}
		if regexp.MustCompile(`(?m)^consul\t`).MatchString(out) {
			t.Errorf("catalog lists Consul's own service:\n%s", out)
		}
		out = mustRun(t, env, "catalog", "web")
		for _, line := range []string{id1 + "\t" + webAddr + "\tpassing\tv1\tteam=a", id2 + "\t" + tcpAddr + "\tpassing\tv2\t"} {
			if !slices.Contains(lines(out), line) {
				t.Errorf("catalog web printed\n%s\nwant the line %q", out, line)
			}
		}
		// What sdctl registered is what Consul's own tools show.
		if out, err := a.Consul(t, "catalog", "services", "-tags"); err != nil || !regexp.MustCompile(`(?m)^web\s+v1,v2$`).MatchString(out) {
			t.Errorf("consul catalog services -tags: %v\n%s", err, out)
		}

		// The checks are real: a failing HTTP answer and a closed port take both instances out.
		status.Store(http.StatusInternalServerError)
		tcp.Close()
		eventually(t, 15*time.Second, func() error {
			out, stderr, code := run(t, env, "resolve", "web")
			if code != 3 || !strings.Contains(stderr, "no healthy instance") {
				return fmt.Errorf("resolve web with both checks failing: exit %d, %q, %s; want 3, no healthy instance", code, out, stderr)
			}
			return nil
		})
		out = mustRun(t, env, "catalog", "web")
		if strings.Count(out, "\tcritical\t") != 2 {
			t.Errorf("catalog web with both checks failing:\n%s\nwant both critical", out)
		}
		status.Store(http.StatusOK)
		eventually(t, 15*time.Second, func() error {
			if out, stderr, code := run(t, env, "resolve", "web"); code != 0 || out != webAddr+"\n" {
				return fmt.Errorf("resolve web after the HTTP check recovered: exit %d, %q, %s", code, out, stderr)
			}
			return nil
		})

		mustRun(t, env, "deregister", id1)
		mustRun(t, env, "deregister", "web", tcpAddr) // by name and address
		if _, stderr := runCode(t, env, 3, "catalog", "web"); !strings.Contains(stderr, "web") {
			t.Errorf("catalog web after deregistering both: %s", stderr)
		}
		if _, stderr := runCode(t, env, 3, "deregister", id1); !strings.Contains(stderr, id1) {
			t.Errorf("deregister of a missing ID: stderr %q does not name %s", stderr, id1)
		}
		runCode(t, env, 0, "deregister", "--ignore-missing", id1)
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		mustRun(t, env, "register", "once", "127.0.0.1:4001", "--ttl", "2s")
		if out := mustRun(t, env, "resolve", "once"); out != "127.0.0.1:4001\n" {
			t.Errorf("resolve right after register --ttl: %q", out)
		}
		eventually(t, 10*time.Second, func() error {
			if out, stderr, code := run(t, env, "resolve", "once"); code != 3 {
				return fmt.Errorf("resolve of an instance whose TTL ran out: exit %d, %q, %s; want 3", code, out, stderr)
			}
			return nil
		})
		if out := mustRun(t, env, "catalog", "once"); !strings.Contains(out, "\tcritical\t") {
			t.Errorf("catalog once after the TTL ran out: %q, want critical", out)
		}
	})

	t.Run("Keepalive", func(t *testing.T) {
		t.Parallel()
		p := startSdctl(t, env, "register", "--ttl", "2s", "--keepalive", "kept", "127.0.0.1:4002")
		id := p.firstLine(t, 15*time.Second)
		if id != "kept-127.0.0.1-4002" {
			t.Errorf("register --keepalive printed %q", id)
		}
		time.Sleep(3 * time.Second) // longer than the TTL
		if out, stderr, code := run(t, env, "resolve", "kept"); code != 0 || out != "127.0.0.1:4002\n" {
			t.Fatalf("resolve after one TTL with --keepalive: exit %d, %q, %s", code, out, stderr)
		}
		p.terminate(t)
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("register --keepalive after SIGTERM: exit %d, want 0\n%s", code, p.stderr.String())
		}
		runCode(t, env, 3, "resolve", "kept")
		if out, _, code := run(t, env, "catalog", "kept"); code != 3 {
			t.Errorf("catalog kept after SIGTERM: exit %d, %q; want 3: the instance must be deregistered, not just critical", code, out)
		}
	})

	t.Run("ResolveWait", func(t *testing.T) {
		t.Parallel()
		p := startSdctl(t, env, "resolve", "later", "--wait", "60s")
		time.Sleep(time.Second)
		if p.exited() {
			t.Fatalf("resolve --wait exited (%d) before any instance existed: %s", p.code, p.stderr.String())
		}
		mustRun(t, env, "register", "later", "127.0.0.1:4003")
		registered := time.Now()
		if code := p.wait(t, 15*time.Second); code != 0 || p.stdout.String() != "127.0.0.1:4003\n" {
			t.Fatalf("resolve --wait: exit %d, %q, %s", code, p.stdout.String(), p.stderr.String())
		}
		t.Logf("resolve --wait returned %v after the registration", time.Since(registered).Round(time.Millisecond))
		if _, stderr := runCode(t, env, 3, "resolve", "later", "--wait", "1s", "--min", "2"); !strings.Contains(stderr, "1 healthy instances, 2 required after waiting 1s") {
			t.Errorf("resolve --wait --min 2: %s", stderr)
		}
	})

	t.Run("ClusterStatus", func(t *testing.T) {
		t.Parallel()
		out := mustRun(t, env, "cluster", "status")
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(a.Name+"\t"+a.ServerAddr) + `\tleader\ttrue\talive\t1\.14\.`)
		if !row.MatchString(out) {
			t.Errorf("cluster status:\n%s\nwant %s as alive leader", out, a.Name)
		}
		var st struct {
			Backend string `json:"backend"`
			Leader  string `json:"leader"`
		}
		out = mustRun(t, env, "--backend", "consul", "cluster", "status", "-o", "json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Backend != "consul" || st.Leader != a.Name {
			t.Errorf("cluster status -o json: %v\n%s", err, out)
		}
	})
}

// TestConsulUnreachable: with no Consul at the address, commands fail fast with exit code 4 and
// say which address they tried.
func TestConsulUnreachable(t *testing.T) {
	t.Parallel()
	down1, down2 := registrytest.ClosedAddr(t), registrytest.ClosedAddr(t)
	env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+down1)
	for _, args := range [][]string{{"resolve", "web"}, {"catalog"}, {"register", "web", "10.0.0.1:80"}, {"deregister", "web-1"}, {"cluster", "status"}} {
		start := time.Now()
		_, stderr := runCode(t, env, 4, args...)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("sdctl %s took %v with Consul down, want a few seconds at most", strings.Join(args, " "), d)
		}
		if !strings.Contains(stderr, down1) || !strings.Contains(stderr, "connection refused") {
			t.Errorf("sdctl %s: stderr %q does not name %s and the reason", strings.Join(args, " "), stderr, down1)
		}
	}
	// Several addresses: each is named.
	_, stderr := runCode(t, withEnv(env, "CONSUL_HTTP_ADDR="+down1+",http://"+down2), 4, "resolve", "web")
	if !strings.Contains(stderr, down1) || !strings.Contains(stderr, down2) {
		t.Errorf("resolve with two dead addresses: stderr %q does not name both", stderr)
	}

	// A host that takes connections but never answers: each address gets attempt-timeout (2s),
	// the last one what remains of --timeout.
	silent := newSilentListener(t)
	start := time.Now()
	_, stderr = runCode(t, withEnv(env, "CONSUL_HTTP_ADDR="+silent+","+down1), 4, "resolve", "web")
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("resolve with a silent first address took %v, want about attempt-timeout (2s)", d)
	}
	if !strings.Contains(stderr, silent+": did not answer within 2s") || !strings.Contains(stderr, down1+": connection refused") {
		t.Errorf("resolve with a silent and a dead address: stderr %q does not name both with their reasons", stderr)
	}
	start = time.Now()
	_, stderr = runCode(t, withEnv(env, "CONSUL_HTTP_ADDR="+silent), 4, "resolve", "web", "--timeout", "2s")
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("resolve --timeout 2s against a silent host took %v", d)
	}
	// The last address keeps a moment of --timeout to say why it failed, across the plugin
	// boundary.
	if !strings.Contains(stderr, silent+": did not answer within 1.") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("resolve --timeout 2s against a silent host: stderr %q, want one line naming %s", stderr, silent)
	}
}

// TestConsulNotConsul points sdctl at servers that are not Consul: exit 4, one line that says
// the address does not answer like a Consul agent, and no "not found" or success.
func TestConsulNotConsul(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.HandlerFunc{
		"404": http.NotFound,
		"html": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Welcome to nginx!</body></html>"))
		},
		"endless": func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 64<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
	} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		addr := strings.TrimPrefix(srv.URL, "http://")
		env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+addr)
		for _, args := range [][]string{{"resolve", "web"}, {"register", "web", "10.0.0.1:80"}, {"deregister", "web-1"}, {"catalog"}, {"cluster", "status"}} {
			_, stderr := runCode(t, env, 4, args...)
			if !strings.Contains(stderr, addr+": does not answer like a Consul agent") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("%s server: sdctl %s: stderr %q, want one line saying %s does not answer like a Consul agent", name, strings.Join(args, " "), stderr, addr)
			}
		}
	}
}

// newSilentListener returns the address of a listener that accepts connections and never
// answers, held open until the test ends.
func newSilentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, conn)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// TestConsulInvalidCheck: a bad check spec is a usage error (exit 2) found before sdctl sends
// anything to Consul.
func TestConsulInvalidCheck(t *testing.T) {
	t.Parallel()
	l := newCountingListener(t)
	env := serverEnv(t, "CONSUL_HTTP_ADDR="+l.Addr().String())
	for _, tc := range []struct {
		flags []string
		names string // what stderr must mention
	}{
		{[]string{"--check-http", "ftp://x"}, "check-http"},
		{[]string{"--check-http", "http://127.0.0.1:1/health", "--check-interval", "-1s"}, "check-interval"},
		{[]string{"--check-http", "http://127.0.0.1:1/health", "--check-interval", "0s"}, "check-interval"},
		{[]string{"--check-tcp", "no-port"}, "check-tcp"},
		{[]string{"--check-http", "http://127.0.0.1:1/health", "--check-initial-status", "fine"}, "initial status"},
	} {
		args := append([]string{"--backend", "consul", "register", "web", "10.0.0.1:80"}, tc.flags...)
		_, stderr := runCode(t, env, 2, args...)
		if !strings.Contains(stderr, tc.names) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("sdctl %s: stderr %q, want one line naming %s", strings.Join(args, " "), stderr, tc.names)
		}
	}
	if n := l.Accepted(); n != 0 {
		t.Errorf("sdctl connected to the Consul address %d times for invalid checks, want 0", n)
	}
}

// TestConsulACL runs against an agent with ACLs on and default policy deny: no token is a clear
// "permission denied", the token works from CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE, and
// no command ever prints it, not even at trace level.
func TestConsulACL(t *testing.T) {
	t.Parallel()
	a, token := consultest.StartACL(t)
	noToken := serverEnv(t, "CONSUL_HTTP_ADDR="+a.HTTPAddr)
	withToken := withEnv(noToken, "CONSUL_HTTP_TOKEN="+token)
	tokenFile := filepath.Join(t.TempDir(), "consul-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := withEnv(noToken, "CONSUL_HTTP_TOKEN_FILE="+tokenFile)
	wrong := "11111111-2222-4333-8444-555555555555"
	wrongToken := withEnv(noToken, "CONSUL_HTTP_TOKEN="+wrong)

	// sdctl runs `sdctl --backend consul ARGS...`, checks the exit code and that neither token is
	// printed, and returns stdout and stderr.
	sdctl := func(env []string, want int, args ...string) (string, string) {
		t.Helper()
		out, stderr := runCode(t, env, want, append([]string{"--backend", "consul"}, args...)...)
		noSecret(t, token, "sdctl "+strings.Join(args, " "), out, stderr)
		noSecret(t, wrong, "sdctl "+strings.Join(args, " "), out, stderr)
		return out, stderr
	}

	// Without a token Consul refuses writes: exit 5 and a message that says why.
	_, stderr := sdctl(noToken, 5, "register", "web", "10.0.0.1:80")
	if !strings.Contains(strings.ToLower(stderr), "permission denied") || !strings.Contains(stderr, "no ACL token is set") {
		t.Errorf("register without a token: %q, want permission denied and that no token is set", stderr)
	}
	_, stderr = sdctl(wrongToken, 5, "--log-level", "trace", "register", "web", "10.0.0.1:80")
	if !strings.Contains(stderr, "ACL not found") {
		t.Errorf("register with an unknown token: %q, want Consul's reason, ACL not found", stderr)
	}
	_, stderr = sdctl(wrongToken, 5, "cluster", "status")
	if !strings.Contains(stderr, "not known to Consul") {
		t.Errorf("cluster status with an unknown token: %q, want exit 5 and that the token is unknown", stderr)
	}

	for _, args := range tracedCommands("--tag", "v1") {
		sdctl(withToken, 0, args...)
	}
	out, _ := sdctl(fromFile, 0, "--log-level", "trace", "resolve", "web", "--all")
	if out != "10.0.0.1:80\n" {
		t.Errorf("resolve with CONSUL_HTTP_TOKEN_FILE: %q", out)
	}
	sdctl(fromFile, 0, "--log-level", "trace", "register", "api", "10.0.0.3:80")
	sdctl(withToken, 3, "--log-level", "trace", "deregister", "nope")

	// Without a token Consul hides what it denies and does not say so: sdctl finds nothing and
	// warns that results may be hidden.
	_, stderr = sdctl(noToken, 3, "resolve", "web")
	if !strings.Contains(stderr, "no ACL token is set") {
		t.Errorf("resolve without a token on a deny-by-default agent: %q, want a warning that no token is set", stderr)
	}
	_, stderr = sdctl(wrongToken, 5, "--log-level", "trace", "resolve", "web")
	if !strings.Contains(stderr, "ACL not found") {
		t.Errorf("resolve with an unknown token: %q", stderr)
	}

	for _, env := range [][]string{withToken, fromFile, withEnv(withToken, "CONSUL_HTTP_TOKEN_FILE="+tokenFile)} {
		out, _ := sdctl(env, 0, "config", "view")
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("config view does not show the token as <redacted>:\n%s", out)
		}
	}
	out, _ = sdctl(withToken, 0, "config", "view")
	if !regexp.MustCompile(`(?m)^  token: <redacted> # env CONSUL_HTTP_TOKEN$`).MatchString(out) {
		t.Errorf("config view with CONSUL_HTTP_TOKEN:\n%s", out)
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	l := lines(strings.TrimRight(s, "\n"))
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// TestConsulTLS runs against an agent that serves HTTPS only and wants client certificates.
func TestConsulTLS(t *testing.T) {
	t.Parallel()
	a, files := consultest.StartTLS(t, true)
	url := "https://" + a.HTTPSAddr
	env := serverEnv(t, "CONSUL_HTTP_ADDR="+url, "CONSUL_CACERT="+files.CAFile,
		"CONSUL_CLIENT_CERT="+files.ClientCertFile, "CONSUL_CLIENT_KEY="+files.ClientKeyFile)

	mustRun(t, env, "--backend", "consul", "register", "web", "10.0.0.1:80")
	if out := mustRun(t, env, "--backend", "consul", "resolve", "web"); out != "10.0.0.1:80\n" {
		t.Errorf("resolve over HTTPS: %q", out)
	}
	if out := mustRun(t, env, "--backend", "consul", "cluster", "status"); !strings.Contains(out, a.Name+"\t") {
		t.Errorf("cluster status over HTTPS:\n%s", out)
	}
	// The harness's own variables: host:port with CONSUL_HTTP_SSL=true.
	if out := mustRun(t, serverEnv(t, a.Env()...), "--backend", "consul", "resolve", "web"); out != "10.0.0.1:80\n" {
		t.Errorf("resolve with CONSUL_HTTP_SSL=true: %q", out)
	}

	var noCA, noCert []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CONSUL_CACERT=") {
			noCA = append(noCA, kv)
		}
		if !strings.HasPrefix(kv, "CONSUL_CLIENT_") {
			noCert = append(noCert, kv)
		}
	}
	start := time.Now()
	out, stderr, code := run(t, noCA, "--backend", "consul", "resolve", "web")
	if code != 4 || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, a.HTTPSAddr) {
		t.Errorf("resolve without the CA: exit %d, %q, %q; want 4, naming the certificate problem and %s", code, out, stderr, a.HTTPSAddr)
	}
	t.Logf("without the CA (%v): exit %d: %s", time.Since(start).Round(time.Millisecond), code, lastLine(stderr))
	out, stderr, code = run(t, noCert, "--backend", "consul", "resolve", "web")
	if code != 4 || !strings.Contains(stderr, "client certificate") {
		t.Errorf("resolve without a client certificate: exit %d, %q, %q; want 4 and a word on the client certificate", code, out, stderr)
	}
	t.Logf("without a client certificate: exit %d: %s", code, lastLine(stderr))
}

// TestConsulLeaderKilled resolves a service with 200 sdctl processes, one after another, while
// the leader of a 3-server cluster is killed with SIGKILL after the 40th; the leader is the
// first address in SDCTL_CONSUL_ADDRESS, the worst place for it. Not parallel: the timings mean
// more on a quiet machine.
func TestConsulLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server Consul cluster and 200 sdctl processes")
	}
	agents := consultest.StartCluster(t, 3)
	leader := consultest.Leader(t, agents...)
	order := []*consultest.Agent{leader}
	for _, a := range agents {
		if a != leader {
			order = append(order, a)
		}
	}
	survivors := order[1:]
	var addrs []string
	for i, a := range order {
		addrs = append(addrs, a.HTTPAddr)
		// One instance on each server, so that healthy instances remain whichever dies.
		mustRun(t, serverEnv(t, "CONSUL_HTTP_ADDR="+a.HTTPAddr), "--backend", "consul", "register", "web", fmt.Sprintf("10.0.1.%d:3000", i+1))
	}
	env := serverEnv(t, "SDCTL_BACKEND=consul", "SDCTL_CONSUL_ADDRESS="+strings.Join(addrs, ","))
	eventually(t, 10*time.Second, func() error {
		if out, stderr, code := run(t, env, "resolve", "web", "--all"); code != 0 || len(lines(out)) != 3 {
			return fmt.Errorf("resolve web --all: exit %d, %q, %s; want 3 instances", code, out, stderr)
		}
		return nil
	})
	if out := mustRun(t, env, "cluster", "status"); !regexp.MustCompile(`(?m)^` + leader.Name + `\t.*\tleader\ttrue\t`).MatchString(out) {
		t.Fatalf("cluster status before the kill:\n%s\nwant %s as leader", out, leader.Name)
	}

	elected := func() bool {
		for _, a := range survivors {
			var addr string
			if consulGet(a, "/v1/status/leader", &addr) == nil && addr != "" && addr != leader.ServerAddr {
				return true
			}
		}
		return false
	}
	f := resolveLoop(t, env, 200, 40, leader.Kill, elected, "resolve", "web")
	f.report(t, 0)

	next := consultest.Leader(t, survivors...)
	t.Logf("killed leader %s; %s leads now", leader.Name, next.Name)
	var status string
	eventually(t, 30*time.Second, func() error {
		out, stderr, code := run(t, env, "cluster", "status")
		status = out
		if code != 0 || !regexp.MustCompile(`(?m)^`+next.Name+`\t.*\tleader\ttrue\t`).MatchString(out) {
			return fmt.Errorf("cluster status after the kill: exit %d, %s\n%s", code, stderr, out)
		}
		return nil
	})
	if regexp.MustCompile(`(?m)^` + leader.Name + `\t.*\tleader\ttrue\t`).MatchString(status) {
		t.Errorf("cluster status still shows the killed %s as leader:\n%s", leader.Name, status)
	}
	t.Logf("cluster status after the kill:\n%s", status)
}

// TestConsulKeepaliveOnAFrozenAgent: `register --keepalive` stopped with SIGTERM while its agent
// is frozen (SIGSTOP) gives up the deregistration after 5s, well inside Docker's 10s stop
// grace, exits 4 and says that the instance stays until its TTL runs out.
func TestConsulKeepaliveOnAFrozenAgent(t *testing.T) {
	t.Parallel()
	a := consultest.StartDev(t)
	env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+a.HTTPAddr)
	p := startSdctl(t, env, "register", "--ttl", "10s", "--keepalive", "kept", "127.0.0.1:4002")
	if id := p.firstLine(t, 15*time.Second); id != "kept-127.0.0.1-4002" {
		t.Fatalf("register --keepalive printed %q", id)
	}
	thaw := a.Freeze(t)
	defer thaw()
	start := time.Now()
	p.terminate(t)
	code := p.wait(t, 9*time.Second)
	took := time.Since(start)
	stderr := p.stderr.String()
	if code != 4 || took < 4*time.Second || took > 6*time.Second {
		t.Errorf("register --keepalive after SIGTERM with a frozen agent: exit %d after %v, want 4 after 5s\n%s", code, took, stderr)
	}
	want := "sdctl: could not deregister kept-127.0.0.1-4002 on exit within 5s; it stays until its TTL (10s) runs out: "
	if !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, a.HTTPAddr) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q and naming the agent %s", stderr, want, a.HTTPAddr)
	}
}

// TestConsulClusterStatusWithoutLeader: `cluster status` on a server that has never had a
// leader (it waits for a second server, as in a cluster that is starting) exits 6, lists the
// server and says the cluster has no leader, within --timeout.
func TestConsulClusterStatusWithoutLeader(t *testing.T) {
	t.Parallel()
	a := consultest.StartLeaderless(t)
	env := serverEnv(t, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+a.HTTPAddr)
	start := time.Now()
	out, stderr := runCode(t, env, 6, "--timeout", "5s", "cluster", "status")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cluster status took %v, more than --timeout 5s", took)
	}
	if !strings.HasPrefix(out, a.Name+"\t") || !strings.Contains(stderr, "the cluster has no leader") || !strings.HasSuffix(stderr, "sdctl: cluster status: the consul registry has no leader\n") {
		t.Errorf("cluster status without a leader:\nstdout: %s\nstderr: %s", out, stderr)
	}
}

// consulGet GETs path from agent a and decodes the JSON answer into out.
func consulGet(a *consultest.Agent, path string, out any) error {
	resp, err := a.Request(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
