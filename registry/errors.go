package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context (fmt.Errorf("...: %w", ErrNotFound)); the
// plugin layer carries them across the process boundary as gRPC status codes, and the CLI turns
// them into exit codes.
var (
	// ErrNotFound: the instance or service does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a conflicting object exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: the request or configuration is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: the registry cannot be reached or cannot serve the request now.
	ErrUnavailable = errors.New("unavailable")
	// ErrPermissionDenied: the credentials in use do not allow the request.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnsupported: the backend does not implement the requested feature.
	ErrUnsupported = errors.New("not supported by this backend")
	// ErrNoLeader: the registry cluster is reachable but has no leader.
	ErrNoLeader = errors.New("no cluster leader")
)

// FieldError is an ErrInvalid that names the offending field or configuration key, so the CLI
// can say where a bad value came from.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Invalidf returns a FieldError for field with a formatted reason.
func Invalidf(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// kindError is a message that matches a sentinel without repeating its text.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Errorf formats a message that errors.Is matches against kind (one of the sentinels above)
// but that does not end in the sentinel's own text: "no healthy instance of web" rather than
// "no healthy instance of web: not found".
func Errorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}
