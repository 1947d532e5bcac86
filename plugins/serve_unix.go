//go:build unix

package plugins

import (
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// exitWithParent stops the plugin when its host dies. Built-in backends also get a parent-death
// signal from the host; this covers external backends and platforms without one.
func exitWithParent(log hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			log.Warn("host process exited; stopping", "host_pid", parent)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
	}
}
