// Package etcdplugin is the etcd backend as sdctl-backend-etcd serves it. Tests import it to
// serve the backend from a test binary.
package etcdplugin

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/backends/etcd"
	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// Backend is the etcd backend's plugin entry.
func Backend() wire.Backend {
	return wire.Backend{
		Name:         etcd.Name,
		Version:      buildinfo.Get().Version,
		Capabilities: etcd.Capabilities(),
		Options:      etcd.OptionSchema(),
		New: func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return etcd.New(ctx, section, log)
		},
	}
}
