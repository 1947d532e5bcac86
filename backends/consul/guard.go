package consul

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
)

// MaxAnswer caps the body of one answer from Consul. Past it the call fails with "answer too
// large" (exit code 4) rather than growing without bound: a server that is not Consul can send
// an endless body. 32 MiB holds the health entries of about 15,000 instances of one service.
const MaxAnswer = 32 << 20

// maxProbe caps the answer to the probe of /v1/status/leader, a JSON string of an address.
const maxProbe = 4 << 10

// maxWriteAnswer caps the answer to a write. Consul answers the writes sdctl makes with an
// empty body, "true", or a line of error text.
const maxWriteAnswer = 64 << 10

// guard is the RoundTripper under every api.Client. It caps answers at MaxAnswer and makes
// sure an answer comes from Consul before consul/api reads it: every answer of Consul's HTTP
// API carries X-Consul-* headers. An answer without them (a web server, a proxy's own 404, a
// redirect) is checked by asking the same address for /v1/status/leader, which every Consul
// agent answers with a JSON string and no ACL; when that fails too, the call fails with
// "does not answer like a Consul agent". A write is then never taken as done on the word of
// something that is not Consul.
//
// The answer to a write is read whole before it is returned, within the call's time: consul/api
// looks only at its status and discards the body, so an answer whose body never ends (or ends
// after the caller's deadline) would otherwise count as an acknowledgement.
type guard struct {
	next http.RoundTripper
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{r: resp.Body, c: resp.Body, left: MaxAnswer}
	if fromConsul(resp.Header) {
		return settle(req, resp)
	}
	what := fmt.Sprintf("%s %s: HTTP %s without Consul's headers", req.Method, req.URL.Path, resp.Status)
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	drain(resp.Body)
	if bytes.Contains(snippet, []byte("Client sent an HTTP request to an HTTPS server")) {
		return nil, &answerError{msg: "the server speaks TLS (use an https:// address)"}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// Consul never answers 401; a proxy in front of it that wants a password does.
		hint := "set consul.http-auth or CONSUL_HTTP_AUTH"
		if req.Header.Get("Authorization") != "" {
			hint = "the credentials in consul.http-auth were refused"
		}
		return nil, &answerError{msg: "HTTP 401 " + http.StatusText(http.StatusUnauthorized) + " from a proxy in front of Consul (" + hint + ")", denied: true}
	}
	if reason := g.probe(req); reason != "" {
		return nil, &answerError{msg: "does not answer like a Consul agent (" + what + "; " + reason + ")"}
	}
	// Consul behind something that strips its headers: the answer stands, but its body was
	// drained to probe. Ask again.
	again, err := g.next.RoundTrip(rewound(req))
	if err != nil {
		return nil, err
	}
	again.Body = &capped{r: again.Body, c: again.Body, left: MaxAnswer}
	return settle(req, again)
}

// settle returns the answer to a read as it is, and the answer to a write only once its whole
// body has arrived (at most maxWriteAnswer). A body cut short by the call's deadline or by the
// connection is the request's error, so the write counts as not acknowledged.
func settle(req *http.Request, resp *http.Response) (*http.Response, error) {
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWriteAnswer+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxWriteAnswer {
		return nil, &answerError{msg: fmt.Sprintf("does not answer like a Consul agent (the answer to %s %s is over %d KiB; Consul answers writes in a few bytes)",
			req.Method, req.URL.Path, maxWriteAnswer>>10)}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// rewound returns req ready to be sent again (its body rewound).
func rewound(req *http.Request) *http.Request {
	if req.GetBody == nil {
		return req
	}
	r := req.Clone(req.Context())
	if body, err := req.GetBody(); err == nil {
		r.Body = body
	}
	return r
}

// probe asks req's address for /v1/status/leader and returns why the answer is not Consul's,
// or "" when it is.
func (g *guard) probe(orig *http.Request) string {
	u := *orig.URL
	u.Path, u.RawPath, u.RawQuery = "/v1/status/leader", "", ""
	req, err := http.NewRequestWithContext(orig.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return err.Error()
	}
	req.Host = orig.Host
	for _, h := range []string{"X-Consul-Token", "Authorization"} {
		if v := orig.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		return "GET /v1/status/leader: " + describeTransport(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbe+1))
	switch {
	case err != nil:
		return "GET /v1/status/leader: " + describeTransport(err)
	case resp.StatusCode != http.StatusOK:
		return "GET /v1/status/leader: HTTP " + resp.Status
	case len(body) > maxProbe:
		return "GET /v1/status/leader: the answer is not a JSON string"
	}
	if fromConsul(resp.Header) {
		return ""
	}
	var leader string
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" || json.Unmarshal(body, &leader) != nil {
		return "GET /v1/status/leader: the answer is not a JSON string"
	}
	return ""
}

// fromConsul reports whether h carries one of the headers Consul's HTTP API sets.
func fromConsul(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "X-Consul-") {
			return true
		}
	}
	return false
}

// drain reads what is left of a (capped) body and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, body)
	_ = body.Close()
}

// answerError is an answer that sdctl cannot take as Consul's: not Consul at all, or too
// large.
type answerError struct {
	msg string
	// denied: a proxy refused the request for want of credentials.
	denied bool
}

func (e *answerError) Error() string { return e.msg }
func (e *answerError) Unwrap() error { return errAnswer }

var errTooLarge = &answerError{msg: fmt.Sprintf("answer too large (over %d MiB)", MaxAnswer>>20)}

// capped is a response body that fails with errTooLarge past its limit.
type capped struct {
	r    io.Reader
	c    io.Closer
	left int64
}

func (b *capped) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte tells a body of exactly the limit from a larger one.
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return b.r.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *capped) Close() error { return b.c.Close() }

// newTransport is an HTTP transport for a handful of Consul agents: keep-alive connections
// and proxies from the environment (HTTP_PROXY, NO_PROXY), as consul/api's own. It sets no
// time limits of its own: each call's context bounds it (see client.do), so an attempt can
// use all of --timeout. With socket set, every connection goes to that unix socket.
func newTransport(tlsCfg *tls.Config, socket string) *http.Transport {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if socket != "" {
		t.Proxy = nil
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		}
	}
	return t
}
