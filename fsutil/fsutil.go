// Package fsutil reads the files sdctl is pointed at (registry documents, batch files, config
// files) safely: only regular files (or symlinks to one) are opened, so a device node, a FIFO or
// a socket given by mistake is refused at once instead of hanging, exhausting memory or being
// replaced; and every read stops at a documented size cap.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/sdctl/sdctl/registry"
)

// Size caps of the files sdctl reads. They are far above what real files need (a registry of
// 10,000 instances is about 2 MiB) and far below what would hurt a machine.
const (
	// MaxRegistrySize caps a file backend registry document.
	MaxRegistrySize = 64 << 20
	// MaxBatchSize caps a `register -f` batch file (also when read from stdin).
	MaxBatchSize = 64 << 20
	// MaxConfigSize caps a config file.
	MaxConfigSize = 1 << 20
)

var (
	// ErrNotRegular is wrapped by errors about paths that exist but are not regular files.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped by errors about files (or streams) longer than their cap.
	ErrTooLarge = errors.New("file too large")
)

// Kind names the type of a file mode for messages: "a directory", "a character device", ...
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// CheckRegular returns an error wrapping ErrNotRegular when info describes anything but a
// regular file. path is only used in the message.
func CheckRegular(path string, info fs.FileInfo) error {
	if info.Mode().IsRegular() {
		return nil
	}
	return registry.Errorf(ErrNotRegular, "%s is %s, not a regular file (sdctl reads only regular files)", path, Kind(info.Mode()))
}

// OpenRegular opens path for reading when it is a regular file or a symlink to one. Anything
// else is refused without blocking (a FIFO is never waited on) with an error wrapping
// ErrNotRegular. Errors of the operating system (fs.ErrNotExist, fs.ErrPermission) are returned
// as *fs.PathError, so callers can test them with errors.Is.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := CheckRegular(path, info); err != nil {
		return nil, nil, err
	}
	// The path may have been replaced between Stat and Open: open without blocking (a FIFO
	// would wait for a writer) and check what was opened.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	info, err = f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if err := CheckRegular(path, info); err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// ReadRegular reads the regular file at path, refusing anything else (see OpenRegular) and
// files longer than limit bytes (an error wrapping ErrTooLarge).
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, _, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadLimited(f, path, limit)
}

// ReadLimited reads r to its end, failing with an error wrapping ErrTooLarge as soon as it holds
// more than limit bytes; name says what r is in that message.
func ReadLimited(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, registry.Errorf(ErrTooLarge, "%s is larger than %s, the most sdctl reads", name, Size(limit))
	}
	return data, nil
}

// Size formats a byte count for messages: "64 MiB", "1 MiB", "512 KiB", "100 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
