package consul

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// Error is a failure talking to Consul. It matches (errors.Is) the registry sentinels in
// Kinds, so the CLI picks the right exit code, and its message never holds the ACL token.
type Error struct {
	Msg   string
	Kinds []error
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) Unwrap() []error { return e.Kinds }

func newError(msg string, kinds ...error) *Error { return &Error{Msg: msg, Kinds: kinds} }

// classify turns the failure of one attempt on ep into the error to report, and says whether
// another address may serve the call (retry) and whether the client should leave ep for the
// following calls too (moveOn: ep gave no usable answer at all). actx is the attempt's
// context and limit its time limit, to tell sdctl's timeout from the server's.
func (c *client) classify(ep *endpoint, err error, actx context.Context, limit time.Duration) (retry, moveOn bool, out error) {
	var (
		se      api.StatusError
		ae      *answerError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return retryable(se.Code), false, c.statusError(ep, se.Code, se.Body)
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		return true, true, newError(fmt.Sprintf("consul %s: did not answer within %s", ep.name, roundLimit(limit)), registry.ErrUnavailable, context.DeadlineExceeded)
	case errors.As(err, &ae):
		if ae.denied {
			return false, false, newError(fmt.Sprintf("consul %s: %s", ep.name, ae.msg), registry.ErrPermissionDenied)
		}
		if ae == errTooLarge {
			return true, true, newError(fmt.Sprintf("consul %s: %s", ep.name, ae.msg), registry.ErrUnavailable, errAnswer)
		}
		return true, true, notConsul(ep, ae.msg)
	case errors.As(err, &syntax), errors.As(err, &typeErr), errors.Is(err, io.ErrUnexpectedEOF):
		return true, true, notConsul(ep, "does not answer like a Consul agent (unexpected answer: "+oneLine(err.Error())+")")
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return true, true, newError(fmt.Sprintf("consul %s: %s", ep.name, describeTransport(err)), registry.ErrUnavailable)
	}
	return false, false, fmt.Errorf("consul %s: %s", ep.name, c.scrub(oneLine(err.Error())))
}

// roundLimit rounds a time limit for messages: 10ms steps, so that a share of a deadline
// reads "1s" rather than "999.99ms".
func roundLimit(d time.Duration) time.Duration {
	if d < 100*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

// notConsul is the error for an address whose answers are not Consul's. It is
// ErrUnavailable: the registry cannot be reached there; and errAnswer, so that callers do not
// ask the same address again in another way.
func notConsul(ep *endpoint, reason string) error {
	if !strings.HasPrefix(reason, "does not answer like") && !strings.HasPrefix(reason, "the server speaks TLS") {
		reason = "does not answer like a Consul agent (" + reason + ")"
	}
	return newError(fmt.Sprintf("consul %s: %s", ep.name, reason), registry.ErrUnavailable, errAnswer)
}

// retryable statuses mean "this agent cannot serve now", not "the request is wrong".
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// describeTransport turns a Go network error into a short reason without the request URL.
func describeTransport(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidCert x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
		dnsErr      *net.DNSError
		netErr      net.Error
	)
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is Consul running and listening there?)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &unknownCA):
		return "TLS: the server's certificate is signed by an unknown authority (set consul.ca-file or CONSUL_CACERT)"
	case errors.As(err, &hostnameErr):
		return fmt.Sprintf("TLS: %v (set consul.tls-server-name to the name in the certificate)", hostnameErr)
	case errors.As(err, &invalidCert):
		return fmt.Sprintf("TLS: %v", invalidCert)
	case errors.As(err, &recordErr), strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the server does not speak TLS (use an http:// address)"
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"):
		return "TLS: the server wants a client certificate it accepts (set consul.client-cert and consul.client-key)"
	case strings.Contains(msg, "malformed HTTP response"):
		return "the server speaks TLS (use an https:// address)"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "did not answer in time"
	case errors.Is(err, io.EOF), strings.HasSuffix(msg, "EOF"):
		return "the connection closed before an answer came"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return msg
}

// interrupted reports that the caller's context ended while ep was being asked. A deadline is
// the registry not answering in time (ErrUnavailable, exit code 4); a cancellation is the
// caller giving up and is returned as such.
func interrupted(ctx context.Context, ep *endpoint, limit time.Duration, earlier []error) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("consul %s: %w", ep.name, ctx.Err())
	}
	msg := fmt.Sprintf("consul %s: did not answer within %s", ep.name, roundLimit(limit))
	if len(earlier) > 0 {
		msg = joinMessages(append(earlier, errors.New(msg)))
	}
	return newError(msg, registry.ErrUnavailable, context.DeadlineExceeded)
}

// unavailable combines the failures of every address tried.
func unavailable(failures []error) error {
	if len(failures) == 1 {
		return failures[0]
	}
	kinds := []error{registry.ErrUnavailable}
	return newError(joinMessages(failures), kinds...)
}

func joinMessages(errs []error) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = strings.TrimPrefix(e.Error(), "consul ")
	}
	return "consul: no address answered: " + strings.Join(parts, "; ")
}

// statusError maps an HTTP error status from Consul to the registry's sentinels. The body is
// Consul's one-line reason; the token is scrubbed from it all the same.
func (c *client) statusError(ep *endpoint, status int, body string) error {
	reason := c.scrub(oneLine(body))
	where := "consul " + ep.name
	switch status {
	case http.StatusBadRequest:
		return newError(fmt.Sprintf("%s: request refused: %s", where, reason), registry.ErrInvalid)
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := "the ACL token in use lacks the permission"
		if unknownToken(reason) {
			hint = "the ACL token in use is not known to Consul"
		}
		if c.token == "" {
			hint = "no ACL token is set (consul.token, consul.token-file, CONSUL_HTTP_TOKEN)"
		}
		if reason == "" {
			reason = "permission denied"
		}
		return newError(fmt.Sprintf("%s: %s (%s)", where, reason, hint), registry.ErrPermissionDenied)
	case http.StatusNotFound:
		return newError(fmt.Sprintf("%s: %s", where, orDefault(reason, "not found")), registry.ErrNotFound)
	case http.StatusTooManyRequests:
		return newError(fmt.Sprintf("%s: rate limited: %s", where, orDefault(reason, "too many requests")), registry.ErrUnavailable)
	}
	if status >= 500 {
		return newError(fmt.Sprintf("%s: server error %d: %s", where, status, orDefault(reason, http.StatusText(status))), registry.ErrUnavailable)
	}
	return newError(fmt.Sprintf("%s: unexpected status %d: %s", where, status, reason))
}

// unknownToken reports whether Consul's reason for a 403 is a token it does not know.
func unknownToken(reason string) bool { return strings.Contains(reason, "ACL not found") }

// scrub removes the token from s, should a server or proxy ever echo it.
func (c *client) scrub(s string) string {
	if len(c.token) >= 4 {
		s = strings.ReplaceAll(s, c.token, "<redacted>")
	}
	return s
}

// oneLine keeps error messages on one line and of a readable length.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	const limit = 300
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
