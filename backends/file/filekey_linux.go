//go:build linux

package file

import (
	"io/fs"
	"syscall"
)

// fileKey identifies one version of a file: a rename over it, a write in place or a change of
// its size or times gives another key.
type fileKey struct {
	valid             bool
	dev, ino          uint64
	size              int64
	mtimeSec, mtimeNs int64
	ctimeSec, ctimeNs int64
}

func keyOf(info fs.FileInfo) fileKey {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}
	}
	// The conversions are for 32-bit platforms, where some of these fields are narrower.
	return fileKey{
		valid: true, dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size), //nolint:unconvert // see above
		mtimeSec: int64(st.Mtim.Sec), mtimeNs: int64(st.Mtim.Nsec), //nolint:unconvert // see above
		ctimeSec: int64(st.Ctim.Sec), ctimeNs: int64(st.Ctim.Nsec), //nolint:unconvert // see above
	}
}
