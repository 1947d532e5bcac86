package plugins

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sdctl/sdctl/registry"
)

func TestErrorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
		code codes.Code
	}{
		{"not found", fmt.Errorf("instance %q: %w", "x", registry.ErrNotFound), registry.ErrNotFound, codes.NotFound},
		{"exists", fmt.Errorf("a: %w", registry.ErrAlreadyExists), registry.ErrAlreadyExists, codes.AlreadyExists},
		{"invalid", fmt.Errorf("a: %w", registry.ErrInvalid), registry.ErrInvalid, codes.InvalidArgument},
		{"unavailable", fmt.Errorf("consul 127.0.0.1:8500: connection refused: %w", registry.ErrUnavailable), registry.ErrUnavailable, codes.Unavailable},
		{"denied", fmt.Errorf("token: %w", registry.ErrPermissionDenied), registry.ErrPermissionDenied, codes.PermissionDenied},
		{"unsupported", fmt.Errorf("checks: %w", registry.ErrUnsupported), registry.ErrUnsupported, codes.Unimplemented},
		{"no leader", fmt.Errorf("raft: %w", registry.ErrNoLeader), registry.ErrNoLeader, codes.FailedPrecondition},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), context.DeadlineExceeded, codes.DeadlineExceeded},
		{"plain", errors.New("disk on fire"), nil, codes.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := toStatus(tc.err)
			if got := status.Code(st); got != tc.code {
				t.Errorf("code %s, want %s", got, tc.code)
			}
			back, fromBackend := fromStatus(st)
			if !fromBackend {
				t.Fatal("status not recognised as coming from the backend")
			}
			if back.Error() != tc.err.Error() {
				t.Errorf("message %q, want %q", back.Error(), tc.err.Error())
			}
			if tc.want != nil && !errors.Is(back, tc.want) {
				t.Errorf("errors.Is(%v, %v) = false", back, tc.want)
			}
		})
	}
}

func TestFieldErrorRoundTrip(t *testing.T) {
	back, _ := fromStatus(toStatus(registry.Invalidf("port", "port %d is out of range", 0)))
	var fe *registry.FieldError
	if !errors.As(back, &fe) || fe.Field != "port" || fe.Reason != "port 0 is out of range" || !errors.Is(back, registry.ErrInvalid) {
		t.Fatalf("got %#v", back)
	}
}

func TestTransportErrorsAreNotBackendErrors(t *testing.T) {
	_, fromBackend := fromStatus(status.Error(codes.Unavailable, "connection refused"))
	if fromBackend {
		t.Fatal("a bare transport status was taken for a backend error")
	}
}
