//go:build !unix

package commands

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// replaceProcess runs path, with argv0 and args, as a child with this process's standard
// streams (the platform cannot replace a process) and ends the command with the child's exit
// code.
func replaceProcess(path, argv0 string, args []string) error {
	cmd := exec.Command(path, args...)
	cmd.Args[0] = argv0
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitStatus(ee.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}
