//go:build !linux

package etcdtest

import (
	"os"
	"os/exec"
)

// terminate asks a member to shut down cleanly where signals other than kill may be missing.
var terminate os.Signal = os.Interrupt

// setParentDeathSignal is Linux-only; elsewhere t.Cleanup alone ends the servers.
func setParentDeathSignal(*exec.Cmd) {}
