// Package watch is the engine of `sdctl watch`: it follows the Docker engine's container events
// and keeps a registry in step with the containers that run, the job Registrator did.
//
// The design fixes what Registrator's users hit for years. Every change to a container is
// applied by reading the container's current state (inspect) and converging the registry to it,
// so events for one container can never be applied out of order, and a missed event is repaired
// by the next reconcile. Each instance carries ownership marks in its metadata (node, container,
// and a hash of what was registered), so the watcher can tell from the registry alone what this
// node owns and whether it is current: a restart of the watcher, or of its container, neither
// duplicates nor forgets anything, and a reconcile with nothing changed writes nothing.
package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

// Conn is a connection to a registry backend that can tell whether its backend process has
// died. *plugins.Client implements it.
type Conn interface {
	registry.Registry
	Exited() bool
}

// Opener starts (or restarts) the registry backend.
type Opener func(ctx context.Context) (Conn, error)

// Options configure a Watcher. The zero value of each field is a working default.
type Options struct {
	Spec spec.Options
	// Resync is the period of a full reconcile; zero means only on start and reconnects.
	Resync time.Duration
	// TTLRefresh is how often TTL instances are heartbeated when that is sooner than
	// registry.RenewEvery of an instance's TTL (a third of it); zero leaves that to each TTL.
	TTLRefresh time.Duration
	// DeregisterOnSuccess keeps the instances of a container that exited with a failure
	// (non-zero code below 128) until it is removed (Registrator's -deregister on-success).
	DeregisterOnSuccess bool
	// Cleanup also removes entries in Registrator's ID format for this node that carry no
	// sdctl ownership marks (left by Registrator or an older watcher).
	Cleanup bool
	// DeregisterOnExit removes everything this node owns when Run returns.
	DeregisterOnExit bool
	// RetryAttempts is how many more times the registry is tried at start (-1: forever);
	// RetryInterval the pause between tries.
	RetryAttempts int
	RetryInterval time.Duration
	// Labels limits the watcher to containers carrying every one of these labels ("KEY" or
	// "KEY=VALUE"), e.g. one compose project; instances of other containers are never touched.
	Labels []string
	// Workers bounds the containers synced at once.
	Workers int
	// CallTimeout bounds one registry or Docker call.
	CallTimeout time.Duration
	// MaxBackoff caps the delay between retries of a failed registry write.
	MaxBackoff time.Duration
	Log        hclog.Logger
	Metrics    *Metrics
	// Clock is the time every schedule of the watcher follows: retries and backoffs,
	// heartbeats, resyncs, and the grace given to its own writes. Nil is the real clock.
	Clock clock.Clock
}

// Watcher keeps a registry in step with the containers of one Docker engine.
//
// Its state is grouped by job, each with the file that owns it. mu guards every map and flag
// below it unless a comment says otherwise.
type Watcher struct {
	opt    Options
	docker Docker
	open   Opener
	clk    clock.Clock
	log    hclog.Logger
	m      *Metrics
	scope  string // Options.Labels as one string, recorded in spec.MetaScope

	// The backend connection (watcher.go), guarded by regMu: restarted when its process dies.
	regMu sync.Mutex
	reg   Conn

	mu sync.Mutex

	// The event queue (events.go): container IDs waiting for a worker, being synced, or to be
	// synced again once their current sync ends; one retry schedule per container; when the
	// latest event of each arrived (for the event-lag metric); whether the stream is up.
	queue     chan string
	queued    map[string]bool
	inflight  map[string]bool
	again     map[string]bool
	retries   map[string]*retryState
	eventAt   map[string]time.Time
	dockerUp  bool
	workersWG sync.WaitGroup
	// dying holds containers whose last event was die or destroy, with the exit code: their
	// instances go without waiting for an inspect, which the engine answers only once it has
	// cleaned the container up (tens to hundreds of milliseconds).
	dying map[string]int

	// Converging one container (sync.go): what this node registered, registrations the
	// registry refused for good (by spec hash), exited containers kept registered, and the
	// problems already logged per container. locks serialises work per container, idLocks per
	// instance ID; negotiate runs the Docker API version negotiation once.
	owned     map[string]ownedInst // instance ID → what this node registered
	failed    map[string]string    // instance ID → spec hash that the registry refused for good
	kept      map[string]bool
	reported  map[string]map[string]bool
	locks     keyedMutex
	idLocks   keyedMutex
	negotiate sync.Once

	// Reconcile (reconcile.go): requests, one run at a time (reconcileMu), and, while one runs,
	// the instances written since it read the registry, so its older snapshot does not undo them.
	reconcile   chan string
	reconcileMu sync.Mutex
	touched     map[string]bool

	// Heartbeats (heartbeat.go): when each TTL instance was last renewed.
	beatAt map[string]time.Time

	// Recovery (recovery.go): regDown is set from a failed registry call until one succeeds;
	// the call that succeeds first fires the pending retries and asks for a reconcile. wroteAt,
	// view, viewTimer, reconciled and lostPending follow the registry's own view of what this
	// node owns.
	regDown     bool
	wroteAt     map[string]time.Time
	view        map[string]string
	viewTimer   clock.Timer
	reconciled  bool
	lostPending bool
}

type ownedInst struct {
	container string
	cname     string // container name, when this watcher registered the instance
	name      string
	hash      string
	ttl       time.Duration
	health    registry.Health
}

// New returns a Watcher that reads containers from docker and writes to the registry open
// returns. opt.Spec.Node must be set (see NodeName).
func New(docker Docker, open Opener, opt Options) *Watcher {
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.CallTimeout <= 0 {
		opt.CallTimeout = 10 * time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	if opt.RetryInterval <= 0 {
		opt.RetryInterval = 2 * time.Second
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics() // kept but not served
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real()
	}
	if opt.Spec.HealthStarting == "" {
		opt.Spec.HealthStarting = registry.HealthCritical
	}
	scope := slices.Clone(opt.Labels)
	slices.Sort(scope)
	return &Watcher{
		scope: strings.Join(scope, ","),
		opt:   opt, docker: docker, open: open, clk: opt.Clock, log: opt.Log, m: opt.Metrics,
		owned: map[string]ownedInst{}, failed: map[string]string{},
		queued: map[string]bool{}, inflight: map[string]bool{}, again: map[string]bool{},
		retries: map[string]*retryState{}, kept: map[string]bool{}, wroteAt: map[string]time.Time{},
		reported: map[string]map[string]bool{}, dying: map[string]int{}, eventAt: map[string]time.Time{}, beatAt: map[string]time.Time{},
		queue: make(chan string, 4096), reconcile: make(chan string, 1),
	}
}

// NodeName asks the engine for its name, the default node identity: it belongs to the Docker
// host, so it survives recreating the watcher's own container.
func NodeName(ctx context.Context, docker Docker) (string, error) {
	info, err := docker.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("docker: read the engine's name for the node identity: %w", err)
	}
	if info.Name == "" {
		return "", errors.New("docker: the engine reports no name; set --node-id")
	}
	return info.Name, nil
}

// Connect starts the registry backend and waits until the registry answers a read: a
// registry that is not up yet (refusing connections, answering 5xx, electing a leader) is
// tried again with backoff, from 250 ms doubling up to RetryInterval, one log line per try,
// RetryAttempts more times (forever when -1). Errors waiting cannot fix (a bad option, a
// refused token) return at once.
func (w *Watcher) Connect(ctx context.Context) error {
	delay := min(250*time.Millisecond, w.opt.RetryInterval)
	for attempt := 1; ; attempt++ {
		err := w.connectOnce(ctx)
		if err == nil {
			if attempt > 1 {
				w.log.Info("registry ready", "attempts", attempt)
			}
			return nil
		}
		if w.opt.RetryAttempts >= 0 && attempt > w.opt.RetryAttempts || ctx.Err() != nil || !transient(err) {
			return err
		}
		t := w.clk.NewTimer(delay)
		w.log.Warn("registry not ready, retrying", "attempt", attempt, "error", err, "in", delay)
		if !sleep(ctx, t) {
			return err
		}
		delay = min(2*delay, w.opt.RetryInterval)
	}
}

// transient reports whether a failure to reach the registry may go away by itself.
func transient(err error) bool {
	return !errors.Is(err, registry.ErrInvalid) && !errors.Is(err, registry.ErrPermissionDenied) &&
		!errors.Is(err, registry.ErrUnsupported)
}

func (w *Watcher) connectOnce(ctx context.Context) error {
	conn, err := w.open(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	defer cancel()
	if _, err := conn.Services(cctx); err != nil {
		_ = conn.Close()
		return err
	}
	w.regMu.Lock()
	w.reg = conn
	w.regMu.Unlock()
	w.m.registryUp.set(1)
	return nil
}

// Close stops the backend.
func (w *Watcher) Close() error {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	if w.reg != nil {
		err := w.reg.Close()
		w.reg = nil
		return err
	}
	return nil
}

// registry returns the live connection, restarting the backend if its process died.
func (w *Watcher) registry(ctx context.Context) (registry.Registry, error) {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	if w.reg != nil && !w.reg.Exited() {
		return w.reg, nil
	}
	if w.reg != nil {
		w.log.Error("backend plugin exited; restarting it")
		_ = w.reg.Close() // the process is gone; this only reaps it and removes its socket
		w.reg = nil
	}
	conn, err := w.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("restart backend: %w", err)
	}
	w.reg = conn
	w.m.pluginRestarts.inc()
	w.log.Info("backend plugin restarted; reconciling")
	w.requestReconcile("plugin-restart")
	return conn, nil
}

// Ready is nil while the watcher is connected to Docker and to the registry, and the last
// registry call worked.
func (w *Watcher) Ready() error {
	w.regMu.Lock()
	connected := w.reg != nil
	w.regMu.Unlock()
	if !connected {
		return errors.New("registry not connected")
	}
	w.mu.Lock()
	up := w.dockerUp
	w.mu.Unlock()
	if !up {
		return errors.New("docker event stream not connected")
	}
	if w.m.registryUp.value() == 0 {
		return errors.New("registry unavailable")
	}
	return nil
}

// Run follows Docker until ctx ends. It reconciles after every (re)connection to the event
// stream, every Resync, and after a backend restart. Call Connect first.
func (w *Watcher) Run(ctx context.Context) error {
	for range w.opt.Workers {
		w.workersWG.Add(1)
		go w.worker(ctx)
	}
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { defer bg.Done(); w.reconcileLoop(ctx) }()
	go func() { defer bg.Done(); w.followRegistry(ctx) }()
	go func() { defer bg.Done(); w.heartbeatLoop(ctx) }()
	go func() { defer bg.Done(); w.pluginLoop(ctx) }()
	w.eventLoop(ctx)
	bg.Wait()
	w.workersWG.Wait()
	w.stopRecovery()
	if w.opt.DeregisterOnExit {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		w.deregisterAll(dctx)
	}
	return nil
}

// pluginLoop notices a dead backend process even when no call is due, restarts it, and so
// triggers a reconcile.
func (w *Watcher) pluginLoop(ctx context.Context) {
	w.tick(ctx, 500*time.Millisecond, func() {
		w.regMu.Lock()
		dead := w.reg == nil || w.reg.Exited()
		w.regMu.Unlock()
		if dead {
			w.m.registryUp.set(0)
			if _, err := w.registry(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("failed: restart backend", "error", err)
			}
		}
	})
}

// tick calls fn every interval of the watcher's clock until ctx ends.
func (w *Watcher) tick(ctx context.Context, interval time.Duration, fn func()) {
	t := w.clk.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			fn()
		}
	}
}

// sleep waits until t fires, or stops it when ctx ends first, and reports whether it fired.
// Callers make the timer before they log the wait, so a line announcing a try "in" some time
// is never ahead of the timer it announces.
func sleep(ctx context.Context, t clock.Timer) bool {
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C():
		return true
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
