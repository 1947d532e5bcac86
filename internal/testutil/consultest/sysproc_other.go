//go:build !linux

package consultest

import "os/exec"

// startProcess starts cmd. Without Linux's Pdeathsig only t.Cleanup stops the agents.
func startProcess(cmd *exec.Cmd) error {
	return cmd.Start()
}
