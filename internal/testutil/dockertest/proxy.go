package dockertest

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Proxy is a unix socket that forwards every connection to the engine's socket, and that a
// test can cut, as if the engine went away, and restore.
type Proxy struct {
	path   string
	target string

	mu     sync.Mutex
	ln     net.Listener          // nil while cut
	conns  map[net.Conn]struct{} // both ends of every open connection
	closed bool
	wg     sync.WaitGroup
}

// SocketProxy starts a proxy listening on a socket in a temporary directory and forwarding to
// target: a socket path or a unix:// URL; empty means the engine of $DOCKER_HOST when that is a
// unix socket, else /var/run/docker.sock. t.Cleanup closes it.
func SocketProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	if target == "" {
		target = client.DefaultDockerHost
		if h := os.Getenv(client.EnvOverrideHost); h != "" {
			target = h
		}
	}
	if strings.Contains(target, "://") {
		path, ok := strings.CutPrefix(target, "unix://")
		if !ok {
			t.Fatalf("dockertest.SocketProxy: %s is not a unix socket", target)
		}
		target = path
	}
	// A unix socket path is limited to about 100 bytes, which t.TempDir() can exceed.
	dir, err := os.MkdirTemp("", "sdctl-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	tempDirs.Store(dir, true)
	t.Cleanup(func() {
		os.RemoveAll(dir)
		tempDirs.Delete(dir)
	})
	p := &Proxy{path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	if err := p.listen(); err != nil {
		t.Fatalf("dockertest.SocketProxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Host is the proxy's address for DOCKER_HOST or client.WithHost: unix://<path>.
func (p *Proxy) Host() string { return "unix://" + p.path }

// Client returns a Docker client that talks through the proxy, closed by t.Cleanup. It does
// not ping, so it can be made while the proxy is cut.
func (p *Proxy) Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("dockertest: client for %s: %v", p.Host(), err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Cut closes every open connection and the socket itself: until Restore, connecting fails as
// it does when the engine is down.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore listens again after Cut; it does nothing if the proxy is not cut.
func (p *Proxy) Restore() {
	if err := p.listen(); err != nil {
		panic("dockertest: restoring the socket proxy: " + err.Error())
	}
}

// Close cuts the proxy for good and waits for its goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) listen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy closed")
	}
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return err
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve(ln)
	return nil
}

func (p *Proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(ln, c)
	}
}

// forward copies between c, accepted on ln, and a new connection to the target.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("unix", p.target, 10*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // cut since c was accepted
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.conns[up] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(up, c) }()
	go func() { defer wg.Done(); pipe(c, up) }()
	wg.Wait()

	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
	c.Close()
	up.Close()
}

// pipe copies src to dst, then half-closes dst so that the end of one direction reaches the
// other side without cutting the answer coming back.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src) // ends when either side closes, which is how a proxied call ends
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		dst.Close()
	}
}
