//go:build unix

package consultest

import (
	"syscall"
	"testing"
)

// Freeze stops the agent's process with SIGSTOP: it keeps its sockets, so connections are
// accepted by the kernel and never answered, like a hung agent. The process is continued
// (SIGCONT) by the returned function and by t.Cleanup, whichever comes first.
func (a *Agent) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	if a.signal(syscall.SIGSTOP) == nil {
		t.Fatalf("consultest: %s is not running", a.Name)
	}
	thaw = func() { a.signal(syscall.SIGCONT) }
	t.Cleanup(thaw)
	return thaw
}
