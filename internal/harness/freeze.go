//go:build unix

package harness

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Freeze stops the server's process with SIGSTOP: it keeps its sockets, so connections are
// accepted by the kernel and never answered, like a hung server. It returns once the kernel
// shows the process stopped, so that no request sent afterwards reaches a server still
// finishing its time slice. thaw continues it (SIGCONT); it may be called more than once.
func (p *process) Freeze() (thaw func(), err error) {
	if p.signal(syscall.SIGSTOP) == nil {
		return nil, fmt.Errorf("%s is not running", p.what)
	}
	// kill(2) only marks the signal pending: wait until /proc shows the process stopped.
	pid := p.PID()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !stopped(pid); {
		time.Sleep(5 * time.Millisecond)
	}
	return func() { p.signal(syscall.SIGCONT) }, nil
}

// stopped reports whether /proc shows process pid stopped, or there is no /proc to ask (the
// signal is all there is then).
func stopped(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses: "pid (comm) T ...".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't')
}
