//go:build unix

package host

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// PrivateSupported: private backends need Unix socket pairs.
const PrivateSupported = true

// socketPair returns the host's end of a new Unix socket pair as a connection, and the
// backend's end as a file to hand to it. Both are close-on-exec here, so no other child of
// this process inherits either.
func socketPair() (net.Conn, *os.File, error) {
	// Under ForkLock no process can start between the pair's creation and close-on-exec.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socket pair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "backend")
	child := os.NewFile(uintptr(fds[1]), "host")
	conn, err := net.FileConn(mine)
	mine.Close() // FileConn holds a duplicate
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	return conn, child, nil
}

// OwnGroup puts the backend in a process group of its own, so that a Ctrl-C at the terminal
// reaches the command only, which then finishes what it must (deregistering on exit) before it
// closes the connection; on Linux the kernel also kills the backend if the host dies.
func OwnGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	parentDeath(cmd.SysProcAttr)
}

// KillGroup ends the backend and anything it started (it leads its own group).
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// MaxRSS reports the peak resident set of an exited process in KiB.
func MaxRSS(cmd *exec.Cmd) (int64, bool) {
	if cmd.ProcessState == nil {
		return 0, false
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss, true
}
