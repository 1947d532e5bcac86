package watch

import (
	"context"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/registry"
)

// RunOptions is a whole `sdctl watch`: the engine's options and what is set up around it.
type RunOptions struct {
	Options
	// DockerHost is the engine's address ("" for DOCKER_HOST, else the local socket).
	DockerHost string
	// Listen is the address of the /healthz and /metrics server ("" for none).
	Listen string
	// Backend names the registry in log lines and errors.
	Backend string
}

// Run connects to the Docker engine, learns the node's name and advertised address where spec
// leaves them empty, serves /healthz and /metrics, waits for the registry, and runs the
// watcher until ctx ends. Errors in the options (a bad Docker address, a busy listen address)
// are registry.ErrInvalid.
func Run(ctx context.Context, open Opener, o RunOptions) error {
	log := o.Log
	if log == nil {
		log = hclog.NewNullLogger()
		o.Log = log
	}
	docker, err := NewDocker(o.DockerHost)
	if err != nil {
		return invalid(err)
	}
	defer docker.Close()

	var ln net.Listener
	if o.Listen != "" {
		ln, err = net.Listen("tcp", o.Listen)
		if err != nil {
			return invalid(fmt.Errorf("--listen: %w", err))
		}
		defer ln.Close()
	}

	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	sp := &o.Spec
	if sp.Node == "" {
		sp.Node, err = waitForNode(ctx, o.Clock, docker, o.CallTimeout, log)
		if err != nil || sp.Node == "" {
			return err // no node when stopped before it started: nothing to undo
		}
	}
	if sp.DefaultIP == "" {
		sp.DefaultIP = sp.HostIP
	}
	if sp.DefaultIP == "" {
		sp.DefaultIP = AdvertiseAddress(docker.DaemonHost())
		if !sp.Internal && InContainer() {
			log.Warn("running in a container without --ip: published ports are advertised on this container's own address, which other hosts cannot reach; set --ip to the Docker host's address, or use --internal or the host network", "advertise", sp.DefaultIP)
		}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	w := New(docker, open, o.Options)
	if ln != nil {
		// Served while the watcher waits for its registry too: /healthz says "not ready"
		// until it is connected.
		defer Serve(ln, o.Metrics, w.Ready)()
		log.Info("serving /healthz and /metrics", "address", ln.Addr().String())
	}
	if err := w.Connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while still trying: nothing was registered
		}
		return fmt.Errorf("watch: registry %q: %w", o.Backend, err)
	}
	defer func() { _ = w.Close() }()
	log.Info("watching", "node", sp.Node, "backend", o.Backend, "docker", docker.DaemonHost(), "advertise", sp.DefaultIP, "internal", sp.Internal)
	return w.Run(ctx)
}

// invalidError marks a mistake in the options: its text is the mistake's, and it is
// registry.ErrInvalid to errors.Is.
type invalidError struct{ err error }

func invalid(err error) error                { return &invalidError{err} }
func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == registry.ErrInvalid }
