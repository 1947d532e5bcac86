//go:build unix

package plugins

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedBySelf reports whether the file belongs to this process's effective user.
func ownedBySelf(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
