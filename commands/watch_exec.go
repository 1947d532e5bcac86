package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// WatchCommand is the executable that runs `sdctl watch` (see WatchEngine). It ships beside
// sdctl, like the bundled backends, and is looked for only in sdctl's own directory.
const WatchCommand = "sdctl-watch"

// installHint says how to get the programs that ship beside sdctl.
const installHint = "install the release archive or image, or `go install github.com/sdctl/sdctl/cmd/...`"

// WatchPath is where the watch executable is expected beside the sdctl binary exe.
func WatchPath(exe string) string {
	file := WatchCommand
	if runtime.GOOS == "windows" {
		file += ".exe"
	}
	return filepath.Join(filepath.Dir(exe), file)
}

// execWatch replaces this process with sdctl-watch and the same arguments, once they have been
// checked here: signals reach the watcher directly and its exit code is the command's. Its
// argv[0] is this sdctl's path, which it runs to serve the built-in backends.
func execWatch(f *Factory) error {
	path := WatchPath(f.Executable)
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("watch: %s is missing (it ships beside sdctl: %s)", path, installHint)
	}
	return replaceProcess(path, f.Executable, f.args)
}
