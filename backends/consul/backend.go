package consul

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/sdctl/sdctl/registry"
)

// Backend is a registry.Registry on a Consul cluster. It is safe for concurrent use.
type Backend struct {
	c       *client
	opts    Options
	log     *slog.Logger
	version string

	// owners remembers which endpoint took each registration made through this Backend, so
	// heartbeats and deregistrations go to that agent without a search.
	owners sync.Map // instance ID → *endpoint

	closeOnce sync.Once
	closed    chan struct{}
}

// Open returns a backend for opts. It does not contact Consul: a cluster that is down makes
// the first call fail, not the configuration.
func Open(opts Options) (*Backend, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{c: c, opts: opts, log: log, version: opts.Version, closed: make(chan struct{})}, nil
}

// Addresses lists the Consul addresses in use, as host:port, the current one first.
func (b *Backend) Addresses() []string {
	var out []string
	for _, ep := range b.c.order(nil) {
		out = append(out, ep.name)
	}
	return out
}

var errClosed = errors.New("consul backend: used after Close")

// begin is the common start of every call.
func (b *Backend) begin(ctx context.Context) error {
	select {
	case <-b.closed:
		return errClosed
	default:
	}
	return ctx.Err()
}

// beginID is the common start of a call on one instance. The instance may have been registered
// by another tool, with an ID that Register would refuse, so only an empty ID is refused.
func (b *Backend) beginID(ctx context.Context, id string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if id == "" {
		return registry.Invalidf("id", "instance ID is empty")
	}
	return nil
}

// Info names the backend, its version and options, and what it supports. It does not contact
// Consul.
func (b *Backend) Info(ctx context.Context) (registry.Info, error) {
	if err := b.begin(ctx); err != nil {
		return registry.Info{}, err
	}
	return registry.Info{Name: Name, Version: b.version, Capabilities: Capabilities(), Options: OptionSchema()}, nil
}

// Close releases idle connections. Registrations stay: Consul keeps them until they are
// deregistered (or their checks' deregister-after runs out).
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.c.close()
	})
	return nil
}

var _ registry.Registry = (*Backend)(nil)
