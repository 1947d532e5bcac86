// Package builtin lists the backends compiled into the sdctl binary. Each still runs in its own
// process: sdctl re-runs itself as `sdctl backend serve NAME`.
package builtin

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/registry"
)

// Backends returns the built-in backends, the default ("file") first.
func Backends() []plugins.Backend {
	version := buildinfo.Get().Version
	return []plugins.Backend{{
		Name:         file.Name,
		Version:      version,
		Capabilities: file.Capabilities(),
		Options:      file.OptionSchema(),
		New: func(_ context.Context, section map[string]any, _ *slog.Logger) (registry.Registry, error) {
			return file.New(section)
		},
	}}
}
