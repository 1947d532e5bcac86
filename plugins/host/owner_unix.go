//go:build unix

package host

import (
	"io/fs"
	"os"
	"syscall"
)

// OwnedBySelf reports whether the file belongs to this process's effective user.
func OwnedBySelf(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
