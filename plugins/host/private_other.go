//go:build !unix

package host

import (
	"errors"
	"net"
	"os"
	"os/exec"
)

// PrivateSupported: without Unix socket pairs every backend is started with go-plugin.
const PrivateSupported = false

func socketPair() (net.Conn, *os.File, error) { return nil, nil, errors.New("not supported") }

// OwnGroup: no process groups here.
func OwnGroup(*exec.Cmd) {}

// KillGroup kills the backend.
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// MaxRSS is not known here.
func MaxRSS(*exec.Cmd) (int64, bool) { return 0, false }
