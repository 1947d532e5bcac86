package harness

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPProxy stands in front of a server's HTTP API (a Consul agent's): it forwards every
// request, or answers 503 to all of them while failing, as a server in trouble does, and counts
// the requests it is sent by method and path, such as "PUT /v1/agent/service/register".
type HTTPProxy struct {
	// Addr is where the proxy listens, once Serve has started it.
	Addr string

	srv     *http.Server
	failing atomic.Bool
	mu      sync.Mutex
	hits    map[string]int
}

// NewHTTPProxy returns a proxy to target, a base URL such as http://127.0.0.1:8500, that is to
// listen on addr (port 0 picks one). Nothing listens until Serve: a test can hand out the
// address of a server that is not up yet.
func NewHTTPProxy(target, addr string) (*HTTPProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	fwd := httputil.NewSingleHostReverseProxy(u)
	fwd.ErrorLog = log.New(io.Discard, "", 0) // a blocking query the client cancels is no error
	p := &HTTPProxy{Addr: addr, hits: map[string]int{}}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[r.Method+" "+r.URL.Path]++
		p.mu.Unlock()
		if p.failing.Load() {
			http.Error(w, "proxy: failing on purpose", http.StatusServiceUnavailable)
			return
		}
		fwd.ServeHTTP(w, r)
	})}
	return p, nil
}

// Serve starts listening on Addr and sets Addr to the address it got.
func (p *HTTPProxy) Serve() error {
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return err
	}
	p.Addr = ln.Addr().String()
	go func() { _ = p.srv.Serve(ln) }()
	return nil
}

// SetFailing makes the proxy answer every request with 503 (true), or forward them again.
func (p *HTTPProxy) SetFailing(on bool) { p.failing.Store(on) }

// Count returns how many requests of key ("METHOD /path") the proxy was sent since it was made
// or since the last Take, forwarded or failed.
func (p *HTTPProxy) Count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[key]
}

// Take returns the counts so far, by "METHOD /path", and starts over.
func (p *HTTPProxy) Take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hits
	p.hits = map[string]int{}
	return h
}

// Close stops the proxy and the requests it is forwarding.
func (p *HTTPProxy) Close() { _ = p.srv.Close() }
