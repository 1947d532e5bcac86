package etcd

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/sdctl/sdctl/registry"
)

// Backend is a registry kept in etcd: one key per instance, <prefix>/<name>/<id>, holding a
// naming/endpoints record, attached to a lease when the instance has a TTL.
//
// It keeps no state that matters between calls (the cluster is the truth), only a hint of
// which key holds an instance ID, so heartbeats need not scan the prefix.
type Backend struct {
	opts  Options
	keys  keys
	cli   *clientv3.Client
	log   *slog.Logger
	where string

	mu     sync.Mutex
	hints  map[string]string   // instance ID → the key it was last seen under
	warned map[string]struct{} // "key@modrev" of bad values already reported
	closed bool
}

// New decodes the "etcd" config section and connects. Bad values are registry.FieldErrors
// naming the key; a cluster that cannot be reached within the dial timeout is
// registry.ErrUnavailable naming the endpoints. log receives warnings (values under the
// prefix that sdctl did not write); nil discards them.
func New(ctx context.Context, section map[string]any, log *slog.Logger) (*Backend, error) {
	var opts Options
	if err := registry.DecodeOptions(section, &opts); err != nil {
		return nil, err
	}
	return Open(ctx, opts, log)
}

// Open connects to the cluster described by opts and waits, at most opts.DialTimeout and until
// ctx ends, for a connection to one of its endpoints and for the login.
func Open(ctx context.Context, opts Options, log *slog.Logger) (*Backend, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := opts.tlsConfig()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := &Backend{
		opts:   opts,
		keys:   keys{prefix: opts.Prefix},
		log:    log,
		where:  opts.describe(),
		hints:  map[string]string{},
		warned: map[string]struct{}{},
	}
	cfg := clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		// Pings find a member that vanished without closing its connections (a partition)
		// well before a request would time out. etcd refuses pings more often than every 5s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tlsCfg,
		Username:             opts.Username,
		Password:             opts.Password,
		// Without WithBlock the client connects in the background and the first request waits
		// for the caller's deadline; blocking here reports an unreachable cluster within the
		// dial timeout, with the reason the last attempt failed.
		DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()}, //nolint:staticcheck // see above
		// The client's own log lines would land on sdctl's stderr unformatted; failures reach
		// the caller as errors instead.
		Logger: zap.NewNop(),
	}
	// The client's lifetime must not end with ctx, so it cannot dial with ctx; instead the
	// caller stops waiting when ctx ends, and a client that connects after that is closed.
	type dialed struct {
		cli *clientv3.Client
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		cli, err := clientv3.New(cfg)
		done <- dialed{cli, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			return nil, b.connectError(ctx, d.err)
		}
		b.cli = d.cli
		return b, nil
	case <-ctx.Done():
		go func() {
			if d := <-done; d.cli != nil {
				_ = d.cli.Close() // a client nobody waits for any more
			}
		}()
		return nil, ctx.Err()
	}
}

// begin is the common start of every call.
func (b *Backend) begin(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return registry.Errorf(registry.ErrUnavailable, "%s: backend is closed", b.where)
	}
	return ctx.Err()
}

// beginID is the common start of a call on instance id. It returns the key this process last
// wrote the instance at, if any (see hint).
func (b *Backend) beginID(ctx context.Context, id string) (string, error) {
	if err := b.begin(ctx); err != nil {
		return "", err
	}
	if err := registry.ValidateID(id); err != nil {
		return "", err
	}
	hint, _ := b.hint(id)
	return hint, nil
}

// Close ends the connection to the cluster. Leases of instances with a TTL keep running until
// they expire or are renewed by another process.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.cli.Close()
}

// Client is the underlying etcd client, for tests and tools built on the backend.
func (b *Backend) Client() *clientv3.Client { return b.cli }

// Prefix is the key prefix the backend reads and writes.
func (b *Backend) Prefix() string { return b.opts.Prefix }

// Capabilities lists what the backend supports. etcd runs no health checks: instances report
// their health through leases (TTL) and heartbeats.
func Capabilities() []registry.Capability {
	return []registry.Capability{registry.CapTTL, registry.CapWatch, registry.CapWeights, registry.CapDrain}
}

// Info names the backend, its version and options, and what it supports.
func (b *Backend) Info(ctx context.Context) (registry.Info, error) {
	if err := b.begin(ctx); err != nil {
		return registry.Info{}, err
	}
	return registry.Info{Name: Name, Version: b.opts.Version, Capabilities: Capabilities(), Options: OptionSchema()}, nil
}

// hint returns the key an instance ID was last seen under.
func (b *Backend) hint(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key, ok := b.hints[id]
	return key, ok
}

func (b *Backend) setHint(id, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if key == "" {
		delete(b.hints, id)
		return
	}
	b.hints[id] = key
}

// warnBadValue reports a value under the prefix that is not a valid sdctl instance, once per
// version of the key, so a resolve loop does not repeat the same warning.
func (b *Backend) warnBadValue(key string, modRev int64, err error) {
	b.mu.Lock()
	id := key + "@" + strconv.FormatInt(modRev, 10)
	_, seen := b.warned[id]
	if !seen {
		if len(b.warned) > 10000 {
			clear(b.warned)
		}
		b.warned[id] = struct{}{}
	}
	b.mu.Unlock()
	if !seen {
		b.log.Warn("skipping a value under the registry prefix that is not an sdctl instance",
			"key", key, "revision", modRev, "problem", err.Error())
	}
}

// retry runs op until it succeeds, fails for good, or ctx ends. Only errors that mean "try
// again" (no leader, leader changed, a member going away) are retried, with a short backoff;
// op must be safe to repeat. Without a deadline on ctx, retrying stops after maxRetryTime.
func (b *Backend) retry(ctx context.Context, op func(ctx context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxRetryTime)
		defer cancel()
	}
	wait := 25 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		b.log.Debug("retrying after a transient etcd error", "error", err.Error(), "wait", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 400*time.Millisecond)
	}
}

// maxRetryTime bounds retries of calls whose context has no deadline.
const maxRetryTime = 30 * time.Second

var _ registry.Registry = (*Backend)(nil)
