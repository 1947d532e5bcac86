package etcd

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/registry"
)

// The test binary doubles as the backend's plugin process: the plugin tests start it as
// `backend serve etcd`, exactly as sdctl re-runs itself, so they cross a real process boundary.
func TestMain(m *testing.M) {
	if code, ok := plugins.ServeBuiltin(os.Args[1:], []plugins.Backend{pluginBackend()}); ok {
		os.Exit(code)
	}
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// pluginBackend is internal/bundled/etcdplugin.Backend, which this package's tests cannot import
// (it imports this package).
func pluginBackend() plugins.Backend {
	return plugins.Backend{
		Name:         Name,
		Version:      "test",
		Capabilities: Capabilities(),
		Options:      OptionSchema(),
		New: func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
			return New(ctx, section, log)
		},
	}
}
