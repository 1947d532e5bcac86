// Package bundled builds the plugins.Backend of each backend that ships beside sdctl as its own
// executable (cmd/sdctl-backend-consul, cmd/sdctl-backend-etcd). sdctl itself must not import
// it: linking it would bring the backends' clients, and their package initialisation, back
// into every command. Tests import it to serve these backends from the test binary.
package bundled

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/backends/consul"
	"github.com/sdctl/sdctl/backends/etcd"
	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/registry"
)

// Consul is the consul backend as sdctl-backend-consul serves it.
func Consul() plugins.Backend {
	return plugins.Backend{
		Name:         consul.Name,
		Version:      buildinfo.Get().Version,
		Capabilities: consul.Capabilities(),
		Options:      consul.OptionSchema(),
		New: func(_ context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return consul.New(section, log)
		},
	}
}

// Etcd is the etcd backend as sdctl-backend-etcd serves it.
func Etcd() plugins.Backend {
	return plugins.Backend{
		Name:         etcd.Name,
		Version:      buildinfo.Get().Version,
		Capabilities: etcd.Capabilities(),
		Options:      etcd.OptionSchema(),
		New: func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return etcd.New(ctx, section, log)
		},
	}
}

// Backends returns both, to serve them from one binary (a test binary re-running itself).
func Backends() []plugins.Backend { return []plugins.Backend{Consul(), Etcd()} }
