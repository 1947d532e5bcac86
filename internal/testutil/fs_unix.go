//go:build linux

package testutil

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// MakeCharDevice creates a character device node at path, such as a copy of /dev/zero (1, 5)
// or /dev/null (1, 3). It needs root: without it the test is skipped, or fails when
// SDCTL_TEST_REQUIRE_ALL is set.
func MakeCharDevice(t testing.TB, path string, major, minor uint32) {
	t.Helper()
	dev := int((major&0xfff)<<8 | minor&0xff | (minor&^0xff)<<12)
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, dev); err != nil {
		SkipUnlessRequired(t, fmt.Sprintf("cannot create a device node with mknod at %s (needs root): %v", path, err))
	}
}

// MountTmpfs mounts a tmpfs of size bytes on a new temporary directory, which it returns, and
// unmounts it when the test ends. It needs root (or CAP_SYS_ADMIN): without it the test is
// skipped, or fails when SDCTL_TEST_REQUIRE_ALL is set.
func MountTmpfs(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		SkipUnlessRequired(t, fmt.Sprintf("cannot mount a %d-byte tmpfs at %s (needs root): %v", size, dir, err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil && !os.IsNotExist(err) {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
