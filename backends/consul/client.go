package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// maxBody caps what one answer may weigh; a health listing of 100,000 instances stays below.
const maxBody = 256 << 20

// endpoint is one Consul HTTP address.
type endpoint struct {
	base *url.URL // scheme and host only
	// name is host:port, as error messages show it.
	name string

	// node caches the name of the agent's node (from /v1/agent/self), learnt on demand.
	nodeMu sync.Mutex
	node   string
}

// parseAddress reads host:port, [v6]:port, http://host:port or https://host:port; the port
// defaults to 8500 (8501 for https), Consul's conventions.
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
			return nil, registry.Invalidf("address", "%q: unix sockets are not supported; give the agent's HTTP address", raw)
		default:
			return nil, registry.Invalidf("address", "%q: scheme %q is not http or https", raw, before)
		}
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return nil, registry.Invalidf("address", "%q is not HOST:PORT or http(s)://HOST:PORT", raw)
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

// client sends requests to a list of Consul addresses. It keeps using the address that last
// answered; a request that cannot get an answer there (connection refused, timeout, a 5xx) is
// retried on the following addresses, and a connection failure moves the client on for good.
type client struct {
	hc        *http.Client
	eps       []*endpoint
	cur       atomic.Int32
	token     string
	attempt   time.Duration
	dc        string
	ns        string
	partition string
	stale     bool
}

func newClient(opts Options) (*client, error) {
	c := &client{
		token:     opts.Token,
		attempt:   opts.AttemptTimeout,
		dc:        opts.Datacenter,
		ns:        opts.Namespace,
		partition: opts.Partition,
		stale:     opts.Stale,
	}
	seen := map[string]bool{}
	for _, a := range opts.Address {
		ep, err := parseAddress(a, opts.SSL)
		if err != nil {
			return nil, err
		}
		if key := ep.base.String(); !seen[key] {
			seen[key] = true
			c.eps = append(c.eps, ep)
		}
	}
	tlsCfg, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	c.hc = &http.Client{
		Transport: newTransport(tlsCfg, opts.AttemptTimeout),
		// Consul does not redirect; following one could send the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// call is one request to the Consul HTTP API.
type call struct {
	method string
	// path is the escaped URL path, such as "/v1/health/service/web".
	path  string
	query url.Values
	body  any
	// read marks catalog, health and operator reads: they get the datacenter and, unless
	// stale reads are off (or consistent is set), ?stale.
	read bool
	// consistent asks for the leader's view even when stale reads are on.
	consistent bool
	// wait, when positive, makes the read a blocking query held up to wait (with index).
	wait  time.Duration
	index uint64
	// pin sends the call to this endpoint only: agent calls that act on that agent's state.
	pin *endpoint
	// accept lists statuses besides 2xx whose body is an answer (429 from autopilot health).
	accept []int
}

// reply is Consul's answer to a call.
type reply struct {
	ep     *endpoint
	status int
	body   []byte
	// index is X-Consul-Index, at least 1 when present (Consul's rule for blocking clients).
	index uint64
	// filtered is X-Consul-Results-Filtered-By-ACLs: the token could not see everything.
	// Consul never sets it for requests without a token.
	filtered bool
	// denyByDefault is X-Consul-Default-Acl-Policy: deny.
	denyByDefault bool
}

// decode unmarshals the body into v.
func (r *reply) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("consul %s: unexpected answer: %v", r.ep.name, err)
	}
	return nil
}

// do sends c and returns the first answer. Statuses other than 2xx and c.accept become errors
// wrapping the registry sentinels (errors.go).
//
// A blocking query is tried on one address only: its index belongs to the server that gave
// it, and another server that is behind would hold the query for the whole wait. The caller
// (Watch) starts over with a plain read instead; the client has moved on by then.
func (c *client) do(ctx context.Context, cl call) (*reply, error) {
	order := c.order(cl.pin)
	if cl.wait > 0 {
		order = order[:1]
	}
	var failures []error
	for i, ep := range order {
		last := i == len(order)-1
		rep, err := c.send(ctx, ep, cl, last)
		if err != nil {
			if ctx.Err() != nil {
				return nil, interrupted(ctx, ep, failures)
			}
			failures = append(failures, err)
			c.advance(ep)
			continue
		}
		if accepted(rep.status, cl.accept) {
			return rep, nil
		}
		err = c.statusError(rep)
		if retryable(rep.status) && !last {
			// The agent answers but cannot serve (no leader, no server reachable, rate limit):
			// another may, but this one stays the first choice.
			failures = append(failures, err)
			continue
		}
		if retryable(rep.status) {
			failures = append(failures, err)
			return nil, unavailable(failures)
		}
		return nil, err
	}
	return nil, unavailable(failures)
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

// send sends cl to ep once. Each attempt is bounded by attempt-timeout (plus the hold of a
// blocking query), except the last one when the caller's context has a deadline: it may use
// what remains.
func (c *client) send(ctx context.Context, ep *endpoint, cl call, last bool) (*reply, error) {
	limit := c.attempt
	if cl.wait > 0 {
		limit += cl.wait + cl.wait/16 // Consul adds up to wait/16 of jitter
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if _, hasDeadline := ctx.Deadline(); !last || !hasDeadline {
		actx, cancel = context.WithTimeout(ctx, limit)
	}
	defer cancel()

	req, err := c.request(actx, ep, cl)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ep, err, actx, limit)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, transportError(ep, err, actx, limit)
	}
	rep := &reply{ep: ep, status: resp.StatusCode, body: body}
	if v := resp.Header.Get("X-Consul-Index"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			rep.index = max(n, 1)
		}
	}
	rep.filtered = resp.Header.Get("X-Consul-Results-Filtered-By-ACLs") == "true"
	rep.denyByDefault = resp.Header.Get("X-Consul-Default-Acl-Policy") == "deny"
	return rep, nil
}

func (c *client) request(ctx context.Context, ep *endpoint, cl call) (*http.Request, error) {
	q := url.Values{}
	for k, v := range cl.query {
		q[k] = v
	}
	if cl.read {
		if c.dc != "" {
			q.Set("dc", c.dc)
		}
		if c.stale && !cl.consistent {
			q.Set("stale", "")
		}
	}
	if cl.wait > 0 {
		q.Set("index", strconv.FormatUint(max(cl.index, 1), 10))
		q.Set("wait", strconv.FormatInt(cl.wait.Milliseconds(), 10)+"ms")
	}
	if c.ns != "" {
		q.Set("ns", c.ns)
	}
	if c.partition != "" {
		q.Set("partition", c.partition)
	}
	u := *ep.base
	u.RawPath = cl.path
	u.Path, _ = url.PathUnescape(cl.path)
	// "stale" is a flag; Consul accepts "?stale" and "?stale=" alike.
	u.RawQuery = q.Encode()

	var body io.Reader
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	method := cl.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func accepted(status int, accept []int) bool {
	if status >= 200 && status < 300 {
		return true
	}
	for _, s := range accept {
		if s == status {
			return true
		}
	}
	return false
}

// retryable statuses mean "this agent cannot serve now", not "the request is wrong".
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// escape makes one path segment of a service name, ID or node name.
func escape(s string) string { return url.PathEscape(s) }

// nodeName returns the name of ep's agent node, asking the agent once.
func (c *client) nodeName(ctx context.Context, ep *endpoint) (string, error) {
	ep.nodeMu.Lock()
	defer ep.nodeMu.Unlock()
	if ep.node != "" {
		return ep.node, nil
	}
	rep, err := c.do(ctx, call{path: "/v1/agent/self", pin: ep})
	if err != nil {
		return "", err
	}
	var self struct {
		Config struct{ NodeName string }
	}
	if err := rep.decode(&self); err != nil {
		return "", err
	}
	ep.node = self.Config.NodeName
	return ep.node, nil
}

// close drops idle connections.
func (c *client) close() { c.hc.CloseIdleConnections() }
