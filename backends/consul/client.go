package consul

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// endpoint is one Consul HTTP address, with its own api.Client.
type endpoint struct {
	// base is the scheme and host (unix: the socket path), as addresses are compared.
	base *url.URL
	// name is host:port (or unix://PATH), as error messages show it.
	name string
	api  *api.Client

	// node caches the name of the agent's node (from /v1/agent/self), learnt on demand.
	nodeMu sync.Mutex
	node   string
}

// parseAddress reads host:port, [v6]:port, http://host:port, https://host:port or
// unix:///path/to/socket; the port defaults to 8500 (8501 for https), Consul's conventions.
func parseAddress(s string, ssl bool) (*endpoint, error) {
	raw := s
	scheme := "http"
	if ssl {
		scheme = "https"
	}
	if before, after, ok := strings.Cut(s, "://"); ok {
		scheme, s = strings.ToLower(before), after
		switch scheme {
		case "http", "https":
		case "unix":
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?#") {
				return nil, registry.Invalidf("address", "%q: a unix socket address is unix:///ABSOLUTE/PATH", raw)
			}
			return &endpoint{base: &url.URL{Scheme: "unix", Path: s}, name: "unix://" + s}, nil
		default:
			return nil, registry.Invalidf("address", "%q: scheme %q is not http, https or unix", raw, before)
		}
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return nil, registry.Invalidf("address", "%q is not HOST:PORT, http(s)://HOST:PORT or unix:///PATH", raw)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host, a bracketed IPv6 address, or an IPv6 address without brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "8500"
		if scheme == "https" {
			port = "8501"
		}
	}
	if err := registry.ValidateAddress(host); err != nil {
		return nil, registry.Invalidf("address", "%q: %s", raw, strings.TrimPrefix(err.Error(), "address: "))
	}
	if _, err := registry.ParsePort(port); err != nil {
		return nil, registry.Invalidf("address", "%q: %s", raw, strings.TrimPrefix(err.Error(), "port: "))
	}
	hp := net.JoinHostPort(host, port)
	return &endpoint{base: &url.URL{Scheme: scheme, Host: hp}, name: hp}, nil
}

// client sends requests to a list of Consul addresses, one api.Client each. It keeps using
// the address that last answered; a request that cannot get an answer there (connection
// refused, timeout, a 5xx, an answer that is not Consul's) is retried on the following
// addresses, and a failure to get any answer moves the client on for good.
type client struct {
	eps []*endpoint
	// newAPI makes the api.Client of an address found later (an owner agent's).
	newAPI  func(scheme, address string) (*api.Client, error)
	cur     atomic.Int32
	token   string
	attempt time.Duration
	dc      string
	stale   bool
	// transports are closed by close.
	transports []*http.Transport
}

func newClient(opts Options) (*client, error) {
	c := &client{
		token:   opts.Token,
		attempt: opts.AttemptTimeout,
		dc:      opts.Datacenter,
		stale:   opts.Stale,
	}
	tlsCfg, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	var auth *api.HttpBasicAuth
	if opts.HTTPAuth != "" {
		user, pass, _ := strings.Cut(opts.HTTPAuth, ":")
		auth = &api.HttpBasicAuth{Username: user, Password: pass}
	}
	newAPI := func(scheme, address string, tr http.RoundTripper) (*api.Client, error) {
		return api.NewClient(&api.Config{
			Address:   address,
			Scheme:    scheme,
			Token:     opts.Token,
			HttpAuth:  auth,
			Namespace: opts.Namespace,
			Partition: opts.Partition,
			HttpClient: &http.Client{
				Transport: &guard{next: tr},
				// Consul does not redirect; following one could send the token elsewhere.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
		})
	}
	// TCP addresses share one transport, so connections are pooled per host.
	shared := newTransport(tlsCfg, "")
	c.newAPI = func(scheme, address string) (*api.Client, error) { return newAPI(scheme, address, shared) }
	c.transports = append(c.transports, shared)
	seen := map[string]bool{}
	for _, a := range opts.Address {
		ep, err := parseAddress(a, opts.SSL)
		if err != nil {
			return nil, err
		}
		key := ep.base.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		tr, address, scheme := shared, ep.base.Host, ep.base.Scheme
		if ep.base.Scheme == "unix" {
			// consul/api dials unix sockets without a context (no timeout), so the socket
			// gets a transport of its own; the host name only fills the Host header.
			tr = newTransport(tlsCfg, ep.base.Path)
			c.transports = append(c.transports, tr)
			address, scheme = "localhost", "http"
		}
		ep.api, err = newAPI(scheme, address, tr)
		if err != nil {
			return nil, registry.Invalidf("address", "%q: %v", a, err)
		}
		c.eps = append(c.eps, ep)
	}
	return c, nil
}

// op is one call to Consul: run, on one endpoint at a time.
type op struct {
	// pin sends the call to this endpoint only: agent calls that act on that agent's state.
	pin *endpoint
	// wait, when positive, marks a blocking query held up to wait.
	wait time.Duration
	// run makes the call through ep.api with ctx.
	run func(ctx context.Context, ep *endpoint) error
}

// do runs o on the current endpoint, then on the following ones while the failure says that
// endpoint cannot serve (see classify). It returns the endpoint that answered.
//
// Time: each address but the last gets attempt-timeout, and no more than an equal share of
// what remains of ctx's deadline among the addresses still to try; the last gets all that
// remains but a tenth, at most 100ms, kept to report the failure (attempt-timeout when ctx
// has no deadline).
//
// A blocking query is tried on one address only: its index belongs to the server that gave
// it, and another server that is behind would hold the query for the whole wait. The caller
// (Watch) starts over with a plain read instead; the client has moved on by then.
func (c *client) do(ctx context.Context, o op) (*endpoint, error) {
	order := c.order(o.pin)
	if o.wait > 0 {
		order = order[:1]
	}
	var failures []error
	for i, ep := range order {
		left := len(order) - i
		actx, limit, cancel := c.attemptContext(ctx, left, o.wait)
		err := o.run(actx, ep)
		cancel()
		if err == nil {
			return ep, nil
		}
		if ctx.Err() != nil {
			return nil, interrupted(ctx, ep, limit, failures)
		}
		retry, moveOn, err := c.classify(ep, err, actx, limit)
		if !retry {
			return nil, err
		}
		failures = append(failures, err)
		if moveOn {
			c.advance(ep)
		}
	}
	return nil, unavailable(failures)
}

// reportMargin is the most the last attempt leaves of the caller's deadline, to report.
const reportMargin = 100 * time.Millisecond

// attemptContext bounds one attempt when left addresses (this one included) remain to try.
func (c *client) attemptContext(ctx context.Context, left int, wait time.Duration) (context.Context, time.Duration, context.CancelFunc) {
	limit := c.attempt
	if wait > 0 {
		limit += wait + wait/16 // Consul adds up to wait/16 of jitter
	}
	if deadline, ok := ctx.Deadline(); ok {
		remaining := time.Until(deadline)
		if left == 1 {
			// The last address gets what remains of the caller's time, less a margin in
			// which to say why it failed: the caller (across the plugin boundary, the CLI)
			// shares the deadline, and would otherwise only see it run out.
			limit = remaining - min(reportMargin, remaining/10)
			actx, cancel := context.WithTimeout(ctx, limit)
			return actx, limit, cancel
		}
		limit = min(limit, remaining/time.Duration(left))
	}
	actx, cancel := context.WithTimeout(ctx, limit)
	return actx, limit, cancel
}

// order lists the endpoints to try: pin alone, or all starting with the current one.
func (c *client) order(pin *endpoint) []*endpoint {
	if pin != nil {
		return []*endpoint{pin}
	}
	return c.rotation()
}

// rotation lists every endpoint, starting with the current one.
func (c *client) rotation() []*endpoint {
	start := int(c.cur.Load())
	out := make([]*endpoint, 0, len(c.eps))
	out = append(out, c.eps[start:]...)
	return append(out, c.eps[:start]...)
}

// advance moves the client past ep after a connection failure, unless another request already
// moved it.
func (c *client) advance(ep *endpoint) {
	for i, e := range c.eps {
		if e == ep {
			c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.eps)))
			return
		}
	}
}

// current is the endpoint requests go to first.
func (c *client) current() *endpoint { return c.eps[c.cur.Load()] }

// endpointFor returns the configured endpoint with ep's address, or a new endpoint for
// host:port with the scheme, token and TLS settings of the current one.
func (c *client) endpointFor(host, port string) *endpoint {
	cur := c.current()
	hp := net.JoinHostPort(host, port)
	for _, ep := range c.eps {
		if ep.base.Host == hp && ep.base.Scheme == cur.base.Scheme {
			return ep
		}
	}
	scheme := cur.base.Scheme
	if scheme == "unix" {
		scheme = "http"
	}
	ep := &endpoint{base: &url.URL{Scheme: scheme, Host: hp}, name: hp}
	var err error
	ep.api, err = c.newAPI(scheme, hp)
	if err != nil {
		return nil
	}
	return ep
}

// queryOptions are the options of a read: the datacenter, stale reads unless consistent is
// asked for, and with index > 0 a blocking query held up to wait.
func (c *client) queryOptions(ctx context.Context, consistent bool, index uint64, wait time.Duration) *api.QueryOptions {
	q := &api.QueryOptions{Datacenter: c.dc, AllowStale: c.stale && !consistent}
	if index > 0 {
		q.WaitIndex, q.WaitTime = index, wait
	}
	return q.WithContext(ctx)
}

// agentOptions are the options of a call to an agent endpoint: the context only.
func agentOptions(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// nodeName returns the name of ep's agent node, asking the agent once.
func (c *client) nodeName(ctx context.Context, ep *endpoint) (string, error) {
	ep.nodeMu.Lock()
	defer ep.nodeMu.Unlock()
	if ep.node != "" {
		return ep.node, nil
	}
	var self struct {
		Config struct{ NodeName string }
	}
	_, err := c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		_, err := ep.api.Raw().Query("/v1/agent/self", &self, agentOptions(ctx))
		return err
	}})
	if err != nil {
		return "", err
	}
	if self.Config.NodeName == "" {
		return "", notConsul(ep, "/v1/agent/self names no node")
	}
	ep.node = self.Config.NodeName
	return ep.node, nil
}

// close drops idle connections.
func (c *client) close() {
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
}

// errAnswer is the root of the answers that are not Consul's (see guard.go).
var errAnswer = errors.New("not a Consul answer")
