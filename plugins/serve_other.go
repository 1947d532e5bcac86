//go:build !unix

package plugins

import "github.com/hashicorp/go-hclog"

// exitWithParent has no portable way to notice the host's death outside Unix; the host's
// graceful shutdown stops the plugin there.
func exitWithParent(hclog.Logger) {}
