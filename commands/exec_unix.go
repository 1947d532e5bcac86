//go:build unix

package commands

import (
	"fmt"
	"os"
	"syscall"
)

// replaceProcess executes path, with argv0 and args, in place of this process; it returns only
// on failure.
func replaceProcess(path, argv0 string, args []string) error {
	err := syscall.Exec(path, append([]string{argv0}, args...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}
