// Package builtin lists the backends sdctl knows: the one compiled into the sdctl binary (file,
// which still runs in its own process: sdctl re-runs itself as `sdctl backend serve file`) and
// those bundled beside it as their own executables (consul, etcd). Only the bundled backends'
// option schemas are linked here, never their code, so a command initialises only what it uses.
package builtin

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/sdctl/sdctl/backends/consul/consulopts"
	"github.com/sdctl/sdctl/backends/etcd/etcdopts"
	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/internal/xdg"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// Backends returns the built-in backends, the default ("file") first.
func Backends() []wire.Backend {
	return []wire.Backend{{
		Name:         file.Name,
		Version:      buildinfo.Get().Version,
		Capabilities: file.Capabilities(),
		Options:      withDefault(file.OptionSchema(), "path", DefaultFilePath),
		New: func(_ context.Context, section map[string]any, _ *slog.Logger) (registry.Registry, error) {
			defaults := file.Options{Version: buildinfo.Get().Version}
			if _, set := section["path"]; !set {
				path, err := DefaultFilePath()
				if err != nil {
					return nil, registry.Invalidf("path", "%v", err)
				}
				defaults.Path = path
			}
			return file.NewWith(section, defaults)
		},
	}}
}

// DefaultFilePath is where the file backend keeps its registry unless told otherwise:
// $XDG_DATA_HOME/sdctl/registry.json, or ~/.local/share/sdctl/registry.json when
// XDG_DATA_HOME is unset or relative (which the XDG specification says to ignore).
func DefaultFilePath() (string, error) {
	dir, err := xdg.DataHome()
	if err != nil {
		return "", fmt.Errorf("no default registry file (set file.path): %w", err)
	}
	return filepath.Join(dir, "sdctl", "registry.json"), nil
}

// Bundled returns the backends shipped beside sdctl (sdctl-backend-consul, sdctl-backend-etcd)
// with their option schemas.
func Bundled() []host.BundledBackend {
	return []host.BundledBackend{
		{Name: consulopts.Name, Options: consulopts.Schema()},
		{Name: etcdopts.Name, Options: etcdopts.Schema()},
	}
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
