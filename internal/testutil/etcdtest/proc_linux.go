package etcdtest

import (
	"os/exec"
	"syscall"
)

// terminate asks a member to shut down cleanly.
var terminate = syscall.SIGTERM

// setParentDeathSignal has the kernel kill the server when the test process dies, even by
// SIGKILL or a timeout panic, so no etcd outlives the test that started it.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
