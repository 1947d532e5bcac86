//go:build unix

package consultest

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// Freeze stops the agent's process with SIGSTOP: it keeps its sockets, so connections are
// accepted by the kernel and never answered, like a hung agent. The process is continued
// (SIGCONT) by the returned function and by t.Cleanup, whichever comes first.
func (a *Agent) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	if a.signal(syscall.SIGSTOP) == nil {
		t.Fatalf("consultest: %s is not running", a.Name)
	}
	// kill(2) only marks the signal pending: wait until the kernel shows the process stopped,
	// so that no request of the test reaches an agent still finishing its time slice.
	a.mu.Lock()
	pid := a.cmd.Process.Pid
	a.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break // no /proc here: the signal is all there is
		}
		// The state follows the command name in parentheses: "pid (comm) T ...".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't') {
			break
		}
	}
	thaw = func() { a.signal(syscall.SIGCONT) }
	t.Cleanup(thaw)
	return thaw
}
