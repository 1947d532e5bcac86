//go:build !linux

package file

import "io/fs"

// fileKey identifies one version of a file; elsewhere than on Linux it is never valid, so the
// document cache is not used.
type fileKey struct{ valid bool }

func keyOf(fs.FileInfo) fileKey { return fileKey{} }
