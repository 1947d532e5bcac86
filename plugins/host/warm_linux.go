package host

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// WarmSupported: warm backends rely on SO_PEERCRED, which is Linux's.
const WarmSupported = true

func inodeOf(info fs.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10)
	}
	return ""
}

// currentUmask reads the process's umask without changing it.
func currentUmask() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range splitLines(data) {
		if len(line) > 6 && line[:6] == "Umask:" {
			return line[6:]
		}
	}
	return ""
}

func splitLines(data []byte) []string {
	var out []string
	start := 0
	for i, c := range data {
		if c == '\n' {
			out = append(out, string(data[start:i]))
			start = i + 1
		}
	}
	return out
}

// PeerCred returns the process ID and user ID of the other end of a Unix socket connection, as
// the kernel recorded them when the connection was made.
func PeerCred(conn net.Conn) (pid, uid int, err error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, 0, fmt.Errorf("not a Unix socket connection (%T)", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, credErr
	}
	return int(cred.Pid), int(cred.Uid), nil
}

// detach starts the warm backend in its own session: no controlling terminal, no signal from
// the terminal or the shell's process group, and it outlives the command that started it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// signalPid sends sig to pid.
func signalPid(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// alive reports whether pid still exists (and is not a zombie we could reap).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	for i := len(data) - 1; i > 0; i-- {
		if data[i] == ')' {
			return i+2 < len(data) && data[i+2] != 'Z'
		}
	}
	return true
}

// parentDeath has the kernel kill a backend started for one command when its host dies.
func parentDeath(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
