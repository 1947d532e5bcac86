//go:build !linux

package plugins

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere the plugin watches its parent (serve_unix.go).
func setParentDeathSignal(*exec.Cmd) {}

func maxRSS(*exec.Cmd) (int64, bool) { return 0, false }

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
