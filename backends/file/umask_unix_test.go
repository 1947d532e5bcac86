//go:build unix

package file

import (
	"os"
	"strconv"
	"syscall"
)

// applyTestUmask sets the umask given in WRITER_UMASK (octal), as a user's shell would.
func applyTestUmask() {
	if m, err := strconv.ParseUint(os.Getenv("WRITER_UMASK"), 8, 32); err == nil {
		syscall.Umask(int(m))
	}
}
