//go:build linux

package harness

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Linux delivers Pdeathsig when the thread that forked the child exits, not when the process
// does. The Go runtime may retire threads, so every process is forked from one goroutine that
// stays locked to its thread for the life of the program: the servers then die with it.
var (
	spawnOnce sync.Once
	spawnCh   = make(chan spawnReq)
)

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the process
	for r := range spawnCh {
		r.err <- r.cmd.Start()
	}
}

// StartProcess starts cmd in a process group of its own, so that a Ctrl-C in the terminal
// reaches the program that started it (which then stops it) rather than the process directly,
// and so that the kernel kills it (SIGKILL) when that program dies, even before its clean-up
// runs.
func StartProcess(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() { go spawner() })
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}
