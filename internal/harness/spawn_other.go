//go:build !linux

package harness

import "os/exec"

// StartProcess starts cmd. Without Linux's Pdeathsig only the caller's clean-up stops it.
func StartProcess(cmd *exec.Cmd) error {
	return cmd.Start()
}
