package file

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/sdctl/sdctl/registry"
)

// CorruptError reports a registry document that cannot be used: not JSON, not an sdctl
// registry, or holding an invalid instance. The backend never writes over such a file, so a
// hand edit gone wrong is not lost; a person has to fix or move it.
//
// It deliberately wraps no sentinel: registry.ErrInvalid would blame the caller's input.
type CorruptError struct {
	Path string
	// Line and Column (1-based, in characters) locate the problem; zero when it has no place.
	Line, Column int
	Problem      string
}

func (e *CorruptError) Error() string {
	where := e.Path
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, e.Column)
	}
	return fmt.Sprintf("%s: corrupt file registry: %s (sdctl will not write to it until it is fixed or moved away)", where, e.Problem)
}

// ioError is a failed file system operation on the registry. It wraps both a sentinel
// (ErrPermissionDenied or ErrUnavailable), so the CLI can choose an exit code, and the
// operating system's error, so callers can still test for fs.ErrPermission and the like. A
// full disk (or quota) wraps no sentinel: it is a fault of the local machine, not of a
// registry that could answer later, so it is an ordinary error (exit code 1).
type ioError struct {
	op, path string
	kind     error
	err      error
}

func newIOError(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The path is already in our message; keep only the system's reason.
		err = pe.Err
	}
	kind := registry.ErrUnavailable
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		kind = registry.ErrPermissionDenied
	case diskFull(err):
		kind = nil
	}
	return &ioError{op: op, path: path, kind: kind, err: err}
}

// diskFull reports whether err says the file system (or the user's quota) has no room left.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func (e *ioError) Error() string {
	msg := fmt.Sprintf("file registry: cannot %s %s: %v", e.op, e.path, e.err)
	switch {
	case errors.Is(e.kind, registry.ErrPermissionDenied):
		msg += " (check the owner and mode of the file and its directory, or choose another file.path)"
	case diskFull(e.err):
		msg += " (the registry file is unchanged; free some space and try again)"
	}
	return msg
}

func (e *ioError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}
