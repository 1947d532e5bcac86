package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/sdctl/sdctl/registry"
)

// etcdError is a failed request: a message naming the cluster, the registry sentinel the CLI
// turns into an exit code, and etcd's own error for callers that look deeper. Messages never
// carry the password: etcd's errors do not, and sdctl adds only the user name.
type etcdError struct {
	msg  string
	kind error
	err  error
}

func (e *etcdError) Error() string { return e.msg }

func (e *etcdError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// wrap turns an error of the etcd client into one that names the cluster and wraps the right
// sentinel. key, when set, is what the request touched (permission errors name it).
// Cancellation passes through unchanged: it is the caller's doing, not the cluster's.
func (b *Backend) wrap(err error, key string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var ee *etcdError
	if errors.As(err, &ee) {
		return err
	}
	// Errors of sdctl's own making already say what is wrong and where.
	for _, own := range []error{registry.ErrNotFound, registry.ErrInvalid, registry.ErrUnsupported, registry.ErrAlreadyExists} {
		if errors.Is(err, own) {
			return err
		}
	}
	kind, reason := classify(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		kind = registry.ErrUnavailable
		reason = "no answer before the deadline"
		if b.cli != nil {
			if conn := b.cli.ActiveConnection(); conn != nil && conn.GetState() != connectivity.Ready {
				reason = "no endpoint reachable before the deadline"
			}
		}
	case errors.Is(kind, registry.ErrPermissionDenied) && key != "":
		reason += fmt.Sprintf(" on %s%s", key, b.userHint())
	case errors.Is(kind, registry.ErrPermissionDenied):
		reason += b.userHint()
	}
	return &etcdError{msg: b.where + ": " + reason, kind: kind, err: err}
}

// userHint names the user whose roles fell short.
func (b *Backend) userHint() string {
	if b.opts.Username == "" {
		return " (no user configured: set username and password, or ETCDCTL_USER and ETCDCTL_PASSWORD)"
	}
	return fmt.Sprintf(" (user %q; its roles need read and write on the keys under %s/)", b.opts.Username, b.opts.Prefix)
}

// connectError explains why Open could not connect or log in.
func (b *Backend) connectError(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err
	}
	kind, reason := classify(err)
	switch {
	case errors.Is(kind, registry.ErrPermissionDenied):
		if b.opts.Username != "" {
			reason = fmt.Sprintf("%s (user %q)", reason, b.opts.Username)
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(kind, registry.ErrUnavailable) || kind == nil:
		kind = registry.ErrUnavailable
		reason = fmt.Sprintf("no endpoint reachable within %s", b.opts.DialTimeout)
		cause := connectionCause(err)
		if cause != "" {
			reason += ": " + cause
		}
		// A member that requires a client certificate drops the connection of a client
		// without one; what the client sees is a broken pipe or reset, not the reason.
		if b.usesTLS() && b.opts.CertFile == "" && !strings.Contains(cause, "certificate") {
			reason += " (if the members require client certificates, set cert-file and key-file)"
		}
	}
	return &etcdError{msg: b.where + ": " + reason, kind: kind, err: err}
}

// usesTLS reports whether the client talks TLS to any endpoint.
func (b *Backend) usesTLS() bool {
	if b.opts.CAFile != "" || b.opts.CertFile != "" {
		return true
	}
	for _, ep := range b.opts.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			return true
		}
	}
	return false
}

// connectionCause digs the last connection failure out of gRPC's dial error ("... connection
// error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection
// refused"") and keeps its end, which says what went wrong.
func connectionCause(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "desc = "); ok {
		msg = strings.Trim(after, `"`)
	}
	msg = strings.TrimPrefix(msg, context.DeadlineExceeded.Error()+": ")
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	if msg == context.DeadlineExceeded.Error() {
		return ""
	}
	return msg
}

// classify maps an etcd client error to a registry sentinel (nil when none fits) and a short
// reason for the message.
func classify(err error) (kind error, reason string) { //nolint:staticcheck // kind first reads as the result; reason only explains it
	etcdErr := rpctypes.Error(err)
	var ee rpctypes.EtcdError
	if errors.As(etcdErr, &ee) {
		reason = strings.TrimPrefix(ee.Error(), "etcdserver: ")
		switch {
		case errors.Is(ee, rpctypes.ErrAuthFailed):
			return registry.ErrPermissionDenied, "authentication failed: wrong user name or password"
		case errors.Is(ee, rpctypes.ErrUserEmpty):
			return registry.ErrPermissionDenied, "the cluster requires authentication"
		case errors.Is(ee, rpctypes.ErrPermissionDenied),
			errors.Is(ee, rpctypes.ErrInvalidAuthToken), errors.Is(ee, rpctypes.ErrAuthOldRevision),
			errors.Is(ee, rpctypes.ErrUserNotFound), errors.Is(ee, rpctypes.ErrRoleNotGranted),
			errors.Is(ee, rpctypes.ErrPermissionNotGranted):
			return registry.ErrPermissionDenied, reason
		case errors.Is(ee, rpctypes.ErrNoSpace):
			return registry.ErrUnavailable, "database space exceeded (NOSPACE alarm): the cluster accepts no writes until an operator frees space"
		case errors.Is(ee, rpctypes.ErrRequestTooLarge), errors.Is(ee, rpctypes.ErrTooManyOps):
			return registry.ErrInvalid, reason
		}
		return kindOfCode(ee.Code()), reason
	}
	if s, ok := status.FromError(err); ok {
		return kindOfCode(s.Code()), s.Message()
	}
	return nil, err.Error()
}

func kindOfCode(c codes.Code) error {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return registry.ErrUnavailable
	case codes.PermissionDenied, codes.Unauthenticated:
		return registry.ErrPermissionDenied
	case codes.InvalidArgument, codes.OutOfRange:
		return registry.ErrInvalid
	case codes.NotFound:
		return registry.ErrNotFound
	}
	return nil
}

// retryable reports whether a request that failed with err may succeed if sent again soon:
// the cluster is electing a leader, the member answering went away, or it is overloaded.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ee *etcdError
	if errors.As(err, &ee) {
		err = ee.err
	}
	etcdErr := rpctypes.Error(err)
	for _, transient := range []error{
		rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrStopped,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrTooManyRequests, rpctypes.ErrUnhealthy,
		rpctypes.ErrGRPCNotSupportedForLearner,
	} {
		if errors.Is(etcdErr, transient) || errors.Is(err, transient) {
			return true
		}
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable
}
