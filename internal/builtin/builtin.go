// Package builtin lists the backends compiled into the sdctl binary. Each still runs in its own
// process: sdctl re-runs itself as `sdctl backend serve NAME`.
package builtin

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/backends/consul"
	"github.com/sdctl/sdctl/backends/etcd"
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
		Options:      withDefault(file.OptionSchema(), "path", file.DefaultPath),
		New: func(_ context.Context, section map[string]any, _ *slog.Logger) (registry.Registry, error) {
			return file.New(section)
		},
	}, {
		Name:         consul.Name,
		Version:      version,
		Capabilities: consul.Capabilities(),
		Options:      consul.OptionSchema(),
		New: func(_ context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return consul.New(section, log)
		},
	}, {
		Name:         etcd.Name,
		Version:      version,
		Capabilities: etcd.Capabilities(),
		Options:      etcd.OptionSchema(),
		New: func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return etcd.New(ctx, section, log)
		},
	}}
}

// withDefault fills in the default of key from the user's environment (an XDG path, say), so
// `sdctl config view` shows the value that will really be used.
func withDefault(opts []registry.Option, key string, resolve func() (string, error)) []registry.Option {
	out := append([]registry.Option(nil), opts...)
	for i := range out {
		if out[i].Key == key {
			if v, err := resolve(); err == nil {
				out[i].Default = v
			}
		}
	}
	return out
}
