package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func testServer() *server {
	s := newServer("web")
	s.hostname = func() (string, error) { return "3f2a9c1b7e01", nil }
	s.addresses = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("172.22.0.6"), netip.MustParseAddr("fd00:5d::6")}, nil
	}
	return s
}

func do(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRoot(t *testing.T) {
	h := testServer().handler()

	w := do(t, h, "GET", "/")
	if w.Code != 200 || w.Body.String() != "web 3f2a9c1b7e01 172.22.0.6 fd00:5d::6\n" {
		t.Errorf("GET / = %d %q", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET / Content-Type %q", ct)
	}

	for _, accept := range []string{"application/json", "text/html, application/json;q=0.9"} {
		w = do(t, h, "GET", "/", "Accept", accept)
		var in Info
		if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil || w.Code != 200 {
			t.Fatalf("GET / (Accept %s) = %d %q: %v", accept, w.Code, w.Body, err)
		}
		want := Info{Name: "web", Hostname: "3f2a9c1b7e01", Addresses: []string{"172.22.0.6", "fd00:5d::6"}}
		if in.String() != want.String() || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET / (Accept %s) = %+v, %s", accept, in, w.Header().Get("Content-Type"))
		}
	}

	if w = do(t, h, "GET", "/nope"); w.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", w.Code)
	}
	if w = do(t, h, "DELETE", "/"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE / = %d, want 405", w.Code)
	}
}

func TestNoAddresses(t *testing.T) {
	s := testServer()
	s.addresses = func() ([]netip.Addr, error) { return nil, nil }
	w := do(t, s.handler(), "GET", "/", "Accept", "application/json")
	if strings.TrimSpace(w.Body.String()) != `{"name":"web","hostname":"3f2a9c1b7e01","addresses":[]}` {
		t.Errorf("GET / = %q", w.Body)
	}
}

func TestHealth(t *testing.T) {
	h := testServer().handler()
	steps := []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"POST", "/healthz?state=fail", 200, "unhealthy\n"},
		{"GET", "/healthz", 503, "unhealthy\n"},
		{"HEAD", "/healthz", 503, ""},
		{"POST", "/healthz?state=bogus", 400, "state must be fail or ok\n"},
		{"GET", "/healthz", 503, "unhealthy\n"},
		{"POST", "/healthz?state=ok", 200, "ok\n"},
		{"GET", "/healthz", 200, "ok\n"},
		{"PUT", "/healthz", 405, ""},
	}
	for _, s := range steps {
		w := do(t, h, s.method, s.target)
		if w.Code != s.code || (s.body != "" && w.Body.String() != s.body) {
			t.Errorf("%s %s = %d %q, want %d %q", s.method, s.target, w.Code, w.Body, s.code, s.body)
		}
	}
}

func TestCheck(t *testing.T) {
	s := testServer()
	ts := httptest.NewServer(s.handler())
	defer ts.Close()

	var out, errOut bytes.Buffer
	if code := check([]string{ts.URL + "/healthz"}, &out, &errOut); code != 0 {
		t.Errorf("check healthy = %d (%s), want 0", code, errOut.String())
	}
	s.unhealthy.Store(true)
	if code := check([]string{ts.URL + "/healthz"}, &out, &errOut); code != 1 {
		t.Errorf("check unhealthy = %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "503") {
		t.Errorf("check output %q does not name the status", errOut.String())
	}
	ts.Close()
	if code := check([]string{"-timeout", "2s", ts.URL + "/healthz"}, &out, &errOut); code != 1 {
		t.Errorf("check with no server = %d, want 1", code)
	}
	if code := check(nil, &out, &errOut); code != 2 {
		t.Errorf("check without URL = %d, want 2", code)
	}
}

func TestListenAddr(t *testing.T) {
	for _, c := range []struct{ listen, port, want string }{
		{":3000", "", ":3000"},
		{":3000", "8080", ":8080"},
		{"127.0.0.1:3000", "0", "127.0.0.1:0"},
		{"[::1]:3000", "80", "[::1]:80"},
		{":3000", "http", ""},
		{"3000", "", ""},
	} {
		got, err := listenAddr(c.listen, c.port)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("listenAddr(%q, %q) = %q, %v; want %q", c.listen, c.port, got, err, c.want)
		}
	}
}

func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go testServer().serveUDP(pc)

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "web 3f2a9c1b7e01 172.22.0.6 fd00:5d::6\n" {
		t.Errorf("UDP answer %q, %v", buf[:n], err)
	}
}

func TestHostAddresses(t *testing.T) {
	addrs, err := hostAddresses()
	if err != nil {
		t.Fatal(err)
	}
	seen6 := false
	for _, a := range addrs {
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			t.Errorf("hostAddresses lists %s", a)
		}
		if a.Is6() {
			seen6 = true
		} else if seen6 {
			t.Errorf("hostAddresses %v: IPv4 after IPv6", addrs)
		}
	}
}

// TestProcess runs the real binary: it serves with $PORT taking over the port of -listen, and
// exits 0 on SIGTERM.
func TestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testutil.Build(t, "./examples/service-web", "service-web")
	cmd := exec.Command(bin, "-listen", "127.0.0.1:1", "-name", "proc", "-udp", "0")
	cmd.Env = append(os.Environ(), "PORT=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr string
	select {
	case l := <-lines:
		var ok bool
		if addr, ok = strings.CutPrefix(l, "service-web: listening on "); !ok {
			t.Fatalf("first line %q", l)
		}
		addr = strings.TrimSuffix(addr, " (http)")
	case <-time.After(30 * time.Second):
		t.Fatal("no listening line")
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "proc ") {
		t.Errorf("GET / = %q", body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit status 0", err)
	}
}
