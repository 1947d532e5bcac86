// Command sdctl-watch runs `sdctl watch`. It ships beside the sdctl binary, which replaces itself
// with it once the command line is checked, so that only the watcher links the Docker client and
// pays for its initialisation; it is not meant to be run by hand. It reads the same command line
// and configuration as sdctl and uses sdctl-plugin-host (beside it) to serve the built-in backends
// and to bridge external ones, so that it links neither go-plugin nor gRPC (where socket pairs
// are missing, it starts backends with go-plugin itself: see start_other.go).
package main

import (
	"context"
	"os"

	"github.com/sdctl/sdctl/commands"
	"github.com/sdctl/sdctl/internal/builtin"
	"github.com/sdctl/sdctl/internal/watch"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/plugins/server"
	"github.com/sdctl/sdctl/registry"
)

func main() {
	server.LimitMemory() // a long-running process: see docs/watch.md, "Memory"
	os.Exit(commands.Main(os.Args[1:], commands.Program{
		Builtins:     builtin.Backends(),
		Bundled:      builtin.Bundled(),
		WatchEngine:  run,
		StartBackend: startBackend,
		Executable:   commands.InvokingSdctl(commands.WatchCommand),
	}))
}

// run maps the checked options of `sdctl watch` onto the engine.
func run(ctx context.Context, f *commands.Factory, o *commands.WatchOptions) error {
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	return watch.Run(ctx, func(ctx context.Context) (watch.Conn, error) {
		return f.Backend(ctx)
	}, watch.RunOptions{
		Options: watch.Options{
			Spec: spec.Options{
				Node: o.NodeID, Internal: o.Internal, HostIP: o.IP, ForceTags: o.Tags,
				Explicit: o.Explicit, IPFromLabel: o.IPFromLabel, Network: o.Network, TTL: o.TTL,
				HealthStarting: registry.Health(o.HealthStarting),
			},
			Resync: o.Resync, TTLRefresh: o.TTLRefresh, DeregisterOnSuccess: o.Deregister == "on-success",
			Cleanup: o.Cleanup, DeregisterOnExit: o.DeregisterOnExit,
			RetryAttempts: o.RetryAttempts, RetryInterval: o.RetryInterval,
			Labels: o.Labels, Workers: o.Workers, CallTimeout: cfg.Timeout(), Log: f.Logger().Named("watch"),
		},
		DockerHost: o.DockerHost,
		Listen:     o.Listen,
		Backend:    cfg.Backend(),
	})
}
