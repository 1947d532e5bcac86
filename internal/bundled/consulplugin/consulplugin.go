// Package consulplugin is the consul backend as sdctl-backend-consul serves it. Tests import it
// to serve the backend from a test binary.
package consulplugin

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/backends/consul"
	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// Backend is the consul backend's plugin entry.
func Backend() wire.Backend {
	return wire.Backend{
		Name:         consul.Name,
		Version:      buildinfo.Get().Version,
		Capabilities: consul.Capabilities(),
		Options:      consul.OptionSchema(),
		New: func(_ context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return consul.New(section, log)
		},
	}
}
