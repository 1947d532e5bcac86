//go:build !unix

package host

import "io/fs"

// OwnedBySelf: the temporary directory is per user where files have no Unix owner.
func OwnedBySelf(fs.FileInfo) bool { return true }
