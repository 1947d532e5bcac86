//go:build linux

package consultest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Linux delivers Pdeathsig when the thread that forked the child exits, not when the process
// does. The Go runtime may retire threads, so every agent is forked from one goroutine that
// stays locked to its thread for the life of the test binary: the agents then die with it.
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

// startProcess starts cmd so that the kernel kills it when the test binary goes away, even
// if the binary is killed before its t.Cleanup functions run.
func startProcess(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	spawnOnce.Do(func() { go spawner() })
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawnCh <- r
	return <-r.err
}
