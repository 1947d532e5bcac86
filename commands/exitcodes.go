package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/sdctl/sdctl/registry"
)

// Exit codes. This table is the only place that gives them meaning; docs/exit-codes.md copies
// it and a test keeps the two in step.
const (
	ExitOK               = 0
	ExitError            = 1
	ExitUsage            = 2
	ExitNotFound         = 3
	ExitUnavailable      = 4
	ExitPermissionDenied = 5
	ExitNoLeader         = 6
	ExitInterrupted      = 130
)

// ExitCodes documents each code, in order.
var ExitCodes = []struct {
	Code    int
	Name    string
	Meaning string
}{
	{ExitOK, "ok", "success"},
	{ExitError, "error", "any failure not listed below (a corrupt registry file, a full disk, a crashed backend plugin, ...)"},
	{ExitUsage, "usage", "bad command line, configuration key or value, batch file or other input (an unknown command, flag or key; an invalid name, address, port, weight or template; flags that do not apply together; an unknown backend; a feature the backend does not support), refused before anything is written"},
	{ExitNotFound, "not found", "no such instance or service (the message says which, with the closest known names); `resolve` found fewer healthy instances than required (the message gives their states)"},
	{ExitUnavailable, "backend unavailable", "the registry could not be reached or did not answer in time"},
	{ExitPermissionDenied, "permission denied", "the registry refused the credentials in use"},
	{ExitNoLeader, "no leader", "`cluster status`: the registry answered but its cluster has no leader (file backend: the file cannot be read)"},
	{ExitInterrupted, "interrupted", "stopped by SIGINT or SIGTERM before finishing"},
}

// usageError marks errors in how sdctl was invoked.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage wraps err so it exits with ExitUsage.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// exitStatus ends a command with the exit code of a program it ran in its place, which has
// already explained itself.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode decides the process exit code for the error a command returned.
func exitCode(err error, interrupted bool) int {
	var ue *usageError
	var es exitStatus
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &es):
		return int(es)
	case interrupted && errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ue), errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrUnsupported):
		return ExitUsage
	case errors.Is(err, registry.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ExitUnavailable
	case errors.Is(err, registry.ErrPermissionDenied):
		return ExitPermissionDenied
	case errors.Is(err, registry.ErrNoLeader):
		return ExitNoLeader
	case interrupted:
		return ExitInterrupted
	}
	return ExitError
}
