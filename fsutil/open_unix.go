//go:build unix

package fsutil

import "syscall"

// openNonblock keeps open(2) of a FIFO from waiting for a writer. It changes nothing for a
// regular file.
const openNonblock = syscall.O_NONBLOCK
