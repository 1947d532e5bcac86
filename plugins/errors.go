package plugins

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// errorDomain marks statuses produced by a backend (as opposed to the gRPC transport), so the
// host can tell "the backend said unavailable" from "the plugin process went away".
const errorDomain = "sdctl.registry"

// sentinels maps each domain error to its gRPC code and the reason carried in ErrorInfo.
var sentinels = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{registry.ErrNotFound, codes.NotFound, "NOT_FOUND"},
	{registry.ErrAlreadyExists, codes.AlreadyExists, "ALREADY_EXISTS"},
	{registry.ErrInvalid, codes.InvalidArgument, "INVALID"},
	{registry.ErrUnavailable, codes.Unavailable, "UNAVAILABLE"},
	{registry.ErrPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED"},
	{registry.ErrUnsupported, codes.Unimplemented, "UNSUPPORTED"},
	{registry.ErrNoLeader, codes.FailedPrecondition, "NO_LEADER"},
	{context.Canceled, codes.Canceled, "CANCELED"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "DEADLINE_EXCEEDED"},
}

// toStatus turns a backend error into a gRPC status error that keeps its meaning.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code, reason := codes.Unknown, "UNKNOWN"
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			code, reason = s.code, s.reason
			break
		}
	}
	st := status.New(code, err.Error())
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Domain: errorDomain, Reason: reason}}
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.Field, Description: fe.Reason},
		}})
	}
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		st = withDetails
	}
	return st.Err()
}

// fromStatus turns an error from a gRPC call back into a domain error. The second result is
// false when the error did not come from the backend but from the transport.
func fromStatus(err error) (error, bool) {
	if err == nil {
		return nil, true
	}
	st, ok := status.FromError(err)
	if !ok {
		return err, false
	}
	var info *errdetails.ErrorInfo
	var field *errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == errorDomain {
				info = d
			}
		case *errdetails.BadRequest:
			if v := d.GetFieldViolations(); len(v) > 0 {
				field = v[0]
			}
		}
	}
	if info == nil {
		return err, false
	}
	if field != nil {
		return &registry.FieldError{Field: field.GetField(), Reason: field.GetDescription()}, true
	}
	for _, s := range sentinels {
		if s.reason == info.GetReason() {
			return &wire.RemoteError{Msg: st.Message(), Sentinel: s.err}, true
		}
	}
	return &wire.RemoteError{Msg: st.Message()}, true
}
