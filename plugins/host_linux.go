package plugins

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the plugin when the host dies, even by SIGKILL, so a
// backend never outlives the sdctl process that started it. The plugin also gets its own
// process group: a Ctrl-C at the terminal reaches sdctl only, which then deregisters what it
// must (register --keepalive) before stopping the plugin itself.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// maxRSS reports the peak resident set of an exited process in KiB.
func maxRSS(cmd *exec.Cmd) (int64, bool) {
	if cmd.ProcessState == nil {
		return 0, false
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss, true
}

// killProcessGroup ends the plugin and anything it started. The plugin leads its own group
// (Setpgid above), so the group ID is its PID.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
