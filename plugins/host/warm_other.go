//go:build !linux

package host

import (
	"errors"
	"io/fs"
	"net"
	"os/exec"
	"syscall"
)

// WarmSupported: without SO_PEERCRED a warm backend could not check who connects, so every
// command starts its own backend.
const WarmSupported = false

func inodeOf(fs.FileInfo) string { return "" }

func currentUmask() string { return "" }

func PeerCred(net.Conn) (int, int, error) {
	return 0, 0, errors.New("peer credentials are not supported")
}

func detach(*exec.Cmd) {}

func signalPid(int, syscall.Signal) error { return errors.New("not supported") }

func alive(int) bool { return false }

// parentDeath: only Linux has a parent-death signal; a private backend still ends when its
// connection closes.
func parentDeath(*syscall.SysProcAttr) {}
