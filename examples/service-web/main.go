// Command service-web is a small HTTP server for demos and container tests. GET / answers with
// one line naming the service, the host and the host's addresses:
//
//	service-web 3f2a9c1b7e01 172.22.0.6
//
// or with a JSON object when the request accepts application/json. GET /healthz reports a
// health state (200 "ok" or 503 "unhealthy") that POST /healthz?state=fail|ok flips, so a
// container's HEALTHCHECK can be driven from outside.
//
// "service-web check URL" is such a HEALTHCHECK: it GETs URL and exits 0 on a 2xx answer and 1
// otherwise, for images built FROM scratch that have no curl.
//
// Usage:
//
//	service-web [-listen :3000] [-name service-web] [-udp PORT]
//	service-web check [-timeout 5s] URL
//
// $PORT, when set, replaces the port of -listen. With -udp the server also answers every UDP
// datagram to that port (on the host of -listen) with the same line as GET /. SIGTERM and
// SIGINT shut it down gracefully, with exit status 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const shutdownTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "check" {
		return check(args[1:], stdout, stderr)
	}
	// As early as possible: a SIGTERM that comes before this exits with status 2 (as PID 1).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	fs := flag.NewFlagSet("service-web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":3000", "HTTP listen `address`; $PORT replaces its port")
	name := fs.String("name", "service-web", "service `name` at the start of every answer")
	udpPort := fs.Int("udp", 0, "also answer UDP datagrams on this `port` (0: no UDP)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: service-web [flags]\n       service-web check [-timeout 5s] URL\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "service-web: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	addr, err := listenAddr(*listen, getenv("PORT"))
	if err != nil {
		fmt.Fprintf(stderr, "service-web: %v\n", err)
		return 2
	}

	s := newServer(*name)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "service-web: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "service-web: listening on %s (http)\n", ln.Addr())
	if *udpPort != 0 {
		host, _, _ := net.SplitHostPort(addr)
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(*udpPort)))
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "service-web: %v\n", err)
			return 1
		}
		defer func() { _ = pc.Close() }()
		fmt.Fprintf(stderr, "service-web: listening on %s (udp)\n", pc.LocalAddr())
		go s.serveUDP(pc)
	}

	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "service-web: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "service-web: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "service-web: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// listenAddr replaces the port of listen with port when port is not empty.
func listenAddr(listen, port string) (string, error) {
	host, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("-listen %q: %v", listen, err)
	}
	if port != "" {
		lport = port
	}
	if n, err := strconv.Atoi(lport); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("invalid port %q", lport)
	}
	return net.JoinHostPort(host, lport), nil
}

// check GETs the URL in args and returns 0 on a 2xx answer, 1 otherwise.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("service-web check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: service-web check [-timeout 5s] URL")
		return 2
	}
	// No proxy from the environment: the check is about this server, not the way to it.
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "check: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "check: %s\n", msg)
		return 1
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

// server answers the HTTP and UDP requests.
type server struct {
	name      string
	hostname  func() (string, error)
	addresses func() ([]netip.Addr, error)
	unhealthy atomic.Bool
}

func newServer(name string) *server {
	return &server{name: name, hostname: os.Hostname, addresses: hostAddresses}
}

// Info is the JSON answer to GET /.
type Info struct {
	Name      string   `json:"name"`
	Hostname  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
}

func (s *server) info() (Info, error) {
	host, err := s.hostname()
	if err != nil {
		return Info{}, err
	}
	addrs, err := s.addresses()
	if err != nil {
		return Info{}, err
	}
	in := Info{Name: s.name, Hostname: host, Addresses: []string{}}
	for _, a := range addrs {
		in.Addresses = append(in.Addresses, a.String())
	}
	return in, nil
}

// String is the one-line answer: name, hostname and addresses separated by spaces.
func (in Info) String() string {
	return strings.Join(append([]string{in.Name, in.Hostname}, in.Addresses...), " ")
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.root)
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("POST /healthz", s.setHealth)
	return mux
}

func (s *server) root(w http.ResponseWriter, r *http.Request) {
	in, err := s.info()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if acceptsJSON(r.Header.Values("Accept")) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(in) // the client hung up: nothing to do
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, in)
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.unhealthy.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unhealthy")
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *server) setHealth(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("state") {
	case "fail":
		s.unhealthy.Store(true)
	case "ok":
		s.unhealthy.Store(false)
	default:
		http.Error(w, "state must be fail or ok", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.unhealthy.Load() {
		fmt.Fprintln(w, "unhealthy")
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveUDP answers every datagram on pc with the line GET / answers, until pc is closed.
func (s *server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		in, err := s.info()
		line := in.String()
		if err != nil {
			line = "error: " + err.Error()
		}
		_, _ = pc.WriteTo([]byte(line+"\n"), from) // UDP: a lost answer is the client's to retry
	}
}

// acceptsJSON reports whether one of the Accept header values names application/json.
func acceptsJSON(accept []string) bool {
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt == "application/json" {
				return true
			}
		}
	}
	return false
}

// hostAddresses lists the addresses of the host's interfaces, IPv4 first, leaving out loopback
// and link-local ones: those that other hosts can use to reach this one.
func hostAddresses() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, ia := range ifaddrs {
		n, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
			continue
		}
		addrs = append(addrs, a)
	}
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		default:
			return 1
		}
	})
	return addrs, nil
}
