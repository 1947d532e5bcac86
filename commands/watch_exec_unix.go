//go:build unix

package commands

import (
	"fmt"
	"os"
	"syscall"
)

// replaceProcess executes path with args in place of this process; it returns only on failure.
func replaceProcess(path string, args []string) error {
	err := syscall.Exec(path, append([]string{path}, args...), os.Environ())
	return fmt.Errorf("watch: run %s: %w", path, err)
}
