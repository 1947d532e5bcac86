//go:build unix

package file

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file described by old. Only root may give a
// file away, so for other users the new file is theirs; its group must still be old's (they
// can set it when they belong to it, which a group-shared registry implies), or the users who
// share the registry through the group would lose it.
func keepOwner(f *os.File, old fs.FileInfo) error {
	want, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	cur, err := f.Stat()
	if err != nil {
		return err
	}
	have, ok := cur.Sys().(*syscall.Stat_t)
	if !ok || (have.Uid == want.Uid && have.Gid == want.Gid) {
		return nil
	}
	if err := f.Chown(int(want.Uid), int(want.Gid)); err == nil || have.Gid == want.Gid {
		return nil
	}
	return f.Chown(-1, int(want.Gid))
}
