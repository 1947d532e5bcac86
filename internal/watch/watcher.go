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
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/hashicorp/go-hclog"

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
	Spec SpecOptions
	// Resync is the period of a full reconcile; zero means only on start and reconnects.
	Resync time.Duration
	// TTLRefresh is how often TTL instances are heartbeated; zero means TTL/2 per instance.
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
}

// Watcher keeps a registry in step with the containers of one Docker engine.
type Watcher struct {
	opt    Options
	docker Docker
	open   Opener
	log    hclog.Logger
	m      *Metrics

	regMu sync.Mutex
	reg   Conn
	// regDown is set while the backend must be (re)started.
	regErr error

	mu        sync.Mutex
	owned     map[string]ownedInst // instance ID → what this node registered
	failed    map[string]string    // instance ID → spec hash that the registry refused for good
	queued    map[string]bool
	inflight  map[string]bool
	again     map[string]bool
	retries   map[string]*retryState
	kept      map[string]bool
	reported  map[string]map[string]bool
	eventAt   map[string]time.Time
	beatAt    map[string]time.Time
	queue     chan string
	dockerUp  bool
	reconcile chan string
	locks     keyedMutex // per container
	idLocks   keyedMutex // per instance ID
	negotiate sync.Once
	// scope is Options.Labels as one string, recorded in MetaScope.
	scope string
	// dying holds containers whose last event was die or destroy, with the exit code: their
	// instances go without waiting for an inspect, which the engine answers only once it has
	// cleaned the container up (tens to hundreds of milliseconds).
	dying map[string]int
	// touched records, while a reconcile runs, the instances written since it read the
	// registry, so its (older) snapshot does not undo them.
	touched     map[string]bool
	reconcileMu sync.Mutex
	workersWG   sync.WaitGroup

	// regDown is set from a failed registry call until one succeeds; the call that succeeds
	// first fires the pending retries and asks for a reconcile (see recovery.go).
	regDown bool
	// wroteAt, view, viewAt, viewTimer, reconciled and lostPending follow the registry's own
	// view of what this node owns (see recovery.go).
	wroteAt     map[string]time.Time
	view        map[string]string
	viewTimer   *time.Timer
	reconciled  bool
	lostPending bool
}

// retryState is the one retry schedule of a container: the current delay, and the timer of
// the next attempt while one is due.
type retryState struct {
	delay time.Duration
	timer *time.Timer
	at    time.Time
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
	if opt.Spec.HealthStarting == "" {
		opt.Spec.HealthStarting = registry.HealthCritical
	}
	scope := slices.Clone(opt.Labels)
	slices.Sort(scope)
	return &Watcher{
		scope: strings.Join(scope, ","),
		opt:   opt, docker: docker, open: open, log: opt.Log, m: opt.Metrics,
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
		w.log.Warn("registry not ready, retrying", "attempt", attempt, "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
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
	w.regErr = nil
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
		w.regErr = err
		return nil, fmt.Errorf("restart backend: %w", err)
	}
	w.reg = conn
	w.regErr = nil
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

// eventLoop subscribes to container and network events, reconnecting with backoff; after each
// subscription it asks for a reconcile, so what changed while disconnected is caught up.
func (w *Watcher) eventLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	reason := "start"
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
		_, err := w.docker.Ping(pctx)
		if err == nil {
			// Settle the API version before the concurrent calls start: the client
			// negotiates lazily, and without synchronisation, so only once.
			w.negotiate.Do(func() { w.docker.NegotiateAPIVersion(pctx) })
		}
		cancel()
		if err == nil {
			err = w.follow(ctx, reason)
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		w.setDockerUp(false)
		w.m.failures.inc("events")
		w.log.Error("docker event stream lost; reconnecting", "error", err, "in", backoff)
		reason = "docker-reconnect"
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (w *Watcher) follow(ctx context.Context, reason string) error {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := w.docker.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("type", string(events.NetworkEventType)),
	)})
	w.setDockerUp(true)
	w.log.Info("following docker events", "docker", w.docker.DaemonHost())
	w.requestReconcile(reason)
	for {
		select {
		case msg := <-msgs:
			w.handleEvent(msg)
		case err := <-errs:
			if err == nil {
				err = errors.New("stream closed")
			}
			return err
		}
	}
}

func (w *Watcher) setDockerUp(up bool) {
	w.mu.Lock()
	w.dockerUp = up
	w.mu.Unlock()
	v := 0.0
	if up {
		v = 1
	}
	w.m.dockerUp.set(v)
}

// handleEvent queues the container an event is about; the worker converges it to its current
// state, so the event's own content only decides whether to look.
func (w *Watcher) handleEvent(msg events.Message) {
	action := string(msg.Action)
	if base, _, ok := strings.Cut(action, ":"); ok {
		action = base // "health_status: healthy", "exec_start: sh"
	}
	var id string
	switch msg.Type {
	case events.ContainerEventType:
		switch action {
		case "start", "die", "destroy", "health_status", "rename", "pause", "unpause", "update", "restart":
			id = msg.Actor.ID
		}
	case events.NetworkEventType:
		if action == "connect" || action == "disconnect" {
			id = msg.Actor.Attributes["container"]
		}
	}
	if id == "" {
		return
	}
	w.m.events.inc(action)
	at := time.Now()
	if msg.TimeNano > 0 {
		at = time.Unix(0, msg.TimeNano)
	}
	w.mu.Lock()
	if _, ok := w.eventAt[id]; !ok {
		w.eventAt[id] = at
	}
	switch {
	case msg.Type != events.ContainerEventType:
	case action == "die" || action == "destroy":
		code, err := strconv.Atoi(msg.Actor.Attributes["exitCode"])
		if err != nil {
			code = 0
		}
		if action == "destroy" {
			code = 0 // removed: nothing left to keep, whatever the exit code was
		}
		w.dying[id] = code
	default:
		delete(w.dying, id) // a later event: only an inspect tells the state now
	}
	w.mu.Unlock()
	w.enqueue(id)
}

// enqueue schedules a sync of container id; a container already waiting is not queued twice,
// and one being synced is synced once more afterwards.
func (w *Watcher) enqueue(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.retries[id]; r != nil && r.timer != nil {
		// A retry is scheduled: it reads the container's state when it runs, so this event
		// is covered, and the schedule is not shortened (at most one try per backoff step).
		return
	}
	if w.inflight[id] {
		w.again[id] = true
		return
	}
	if w.queued[id] {
		return
	}
	w.queued[id] = true
	select {
	case w.queue <- id:
	default:
		// The queue is full (a burst of thousands of events): a reconcile covers everything.
		delete(w.queued, id)
		w.requestReconcile("queue-overflow")
	}
}

func (w *Watcher) worker(ctx context.Context) {
	defer w.workersWG.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-w.queue:
			w.mu.Lock()
			delete(w.queued, id)
			w.inflight[id] = true
			w.mu.Unlock()

			_, err := w.syncContainer(ctx, id)

			w.mu.Lock()
			delete(w.inflight, id)
			again := w.again[id]
			delete(w.again, id)
			w.mu.Unlock()
			switch {
			case err != nil && ctx.Err() == nil:
				// Events that came during the pass wait for the retry, which reads the
				// container's state anew.
				w.retryLater(id, err)
			case again:
				w.enqueue(id)
			}
		}
	}
}

// retryLater schedules the next sync of container id after an exponentially growing delay
// (100 ms doubling up to MaxBackoff). A container has one schedule: a failure while a retry is
// due moves that retry rather than adding another, so the registry sees at most one attempt
// per container per delay, whatever the number of events.
func (w *Watcher) retryLater(id string, err error) {
	w.mu.Lock()
	r := w.retries[id]
	if r == nil {
		r = &retryState{}
		w.retries[id] = r
	}
	if r.delay == 0 {
		r.delay = 100 * time.Millisecond
	} else {
		r.delay = min(2*r.delay, w.opt.MaxBackoff)
	}
	d := r.delay
	r.at = time.Now().Add(d)
	if r.timer == nil {
		r.timer = time.AfterFunc(d, func() { w.fireRetry(id) })
	} else {
		r.timer.Reset(d)
	}
	w.m.pending.set(float64(len(w.retries)))
	w.mu.Unlock()
	w.log.Warn("retrying container", "container", short(id), "error", err, "in", d)
}

// fireRetry runs when the retry of container id is due: the schedule ends (its delay stays,
// so a further failure backs off more) and the container is queued.
func (w *Watcher) fireRetry(id string) {
	w.mu.Lock()
	if r := w.retries[id]; r != nil {
		r.timer = nil
	}
	w.mu.Unlock()
	w.m.retries.inc()
	w.enqueue(id)
}

// retryNow brings every scheduled retry forward to now: the registry answers again.
func (w *Watcher) retryNow() {
	w.mu.Lock()
	var due []string
	for id, r := range w.retries {
		if r.timer != nil && r.timer.Stop() {
			r.timer = nil
			due = append(due, id)
		}
	}
	w.mu.Unlock()
	for _, id := range due {
		w.m.retries.inc()
		w.enqueue(id)
	}
}

func (w *Watcher) clearRetry(id string) {
	w.mu.Lock()
	if r := w.retries[id]; r != nil {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(w.retries, id)
	}
	w.m.pending.set(float64(len(w.retries)))
	w.mu.Unlock()
}

// syncContainer converges the registry to the current state of container id and returns the
// number of registry writes it made. An error means it should be tried again later.
func (w *Watcher) syncContainer(ctx context.Context, id string) (int, error) {
	unlock := w.locks.Lock(id)
	defer unlock()

	if n, err, done := w.removeDying(ctx, id); done {
		return n, err
	}

	ictx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	c, err := w.docker.ContainerInspect(ictx, id)
	cancel()
	gone := false
	switch {
	case cerrdefs.IsNotFound(err):
		gone = true
	case err != nil:
		w.m.failures.inc("inspect")
		return 0, fmt.Errorf("inspect: %w", err)
	}

	var desired []registry.Instance
	name := w.containerName(id)
	if !gone {
		name = strings.TrimPrefix(c.Name, "/")
		if !w.selected(c) {
			return 0, nil // another watcher's container (see --label): not ours to touch
		}
		running := c.State != nil && c.State.Running
		if !running && w.keep(c) {
			w.observeLag(id)
			return 0, nil
		}
		spec := BuildSpec(c, w.opt.Spec)
		w.report(id, name, spec)
		desired = spec.Instances
		if w.scope != "" {
			for i := range desired {
				desired[i].Meta[MetaScope] = w.scope
			}
		}
	}
	if gone || (c.State != nil && c.State.Running) {
		w.mu.Lock()
		delete(w.kept, id)
		w.mu.Unlock()
	}
	if gone {
		w.mu.Lock()
		delete(w.reported, id)
		w.mu.Unlock()
	}

	why := "container stopped"
	if gone {
		why = "container removed"
	} else if c.State != nil && c.State.Running {
		why = "no longer eligible (see the container's SERVICE_* settings and the watcher's flags)"
	}
	writes, err := w.apply(ctx, id, name, why, desired)
	if err != nil {
		return writes, err
	}
	w.clearRetry(id)
	w.observeLag(id)
	return writes, nil
}

// observeLag records how long the registry took to reflect container id's first pending event.
func (w *Watcher) observeLag(id string) {
	w.mu.Lock()
	at, ok := w.eventAt[id]
	delete(w.eventAt, id)
	w.mu.Unlock()
	if ok {
		w.m.eventLag.observe(time.Since(at).Seconds())
	}
}

// removeDying deregisters the instances of a container whose last event was die or destroy,
// without an inspect. done is false when the container is not dying, or when --deregister
// on-success keeps it (the inspect path then decides).
func (w *Watcher) removeDying(ctx context.Context, id string) (writes int, err error, done bool) {
	w.mu.Lock()
	code, dying := w.dying[id]
	delete(w.dying, id)
	var mine bool
	for _, o := range w.owned {
		if o.container == id {
			mine = true
			break
		}
	}
	w.mu.Unlock()
	if !dying || !mine || w.opt.DeregisterOnSuccess && code != 0 && code < 128 {
		return 0, nil, false
	}
	writes, err = w.apply(ctx, id, w.containerName(id), "container stopped", nil)
	if err != nil {
		return writes, err, true
	}
	w.clearRetry(id)
	w.observeLag(id)
	return writes, nil, true
}

// containerName names container id in log lines: its name when an instance of it carries one,
// else the short ID.
func (w *Watcher) containerName(id string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.owned {
		if o.container == id && o.cname != "" {
			return o.cname
		}
	}
	return short(id)
}

// selected reports whether c carries every label of Options.Labels.
func (w *Watcher) selected(c container.InspectResponse) bool {
	var have map[string]string
	if c.Config != nil {
		have = c.Config.Labels
	}
	for _, l := range w.opt.Labels {
		k, v, withValue := strings.Cut(l, "=")
		got, ok := have[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}

// keep applies --deregister on-success to a container that is not running: a failed exit keeps
// its instances (so health checks flag it) until the container runs again or is removed.
func (w *Watcher) keep(c container.InspectResponse) bool {
	if !w.opt.DeregisterOnSuccess || c.State == nil {
		return false
	}
	code := c.State.ExitCode
	if code == 0 || code >= 128 || c.State.Status == "created" {
		return false
	}
	w.mu.Lock()
	first := !w.kept[c.ID]
	w.kept[c.ID] = true
	w.mu.Unlock()
	if first {
		w.log.Info("kept: container exited with a failure; its instances stay registered", "container", strings.TrimPrefix(c.Name, "/"), "exit_code", code)
	}
	return true
}

// report logs each skipped key or port of a container once, and counts it.
func (w *Watcher) report(id, name string, spec Spec) {
	w.mu.Lock()
	seen := w.reported[id]
	if seen == nil {
		seen = map[string]bool{}
		w.reported[id] = seen
	}
	var fresh []Problem
	for _, p := range spec.Problems {
		k := "problem:" + p.Key + ":" + p.Reason
		if !seen[k] {
			seen[k] = true
			fresh = append(fresh, p)
		}
	}
	ignored := spec.Ignored != "" && !seen["ignored:"+spec.Ignored]
	if ignored {
		seen["ignored:"+spec.Ignored] = true
	}
	var skips []PortSkip
	for _, s := range spec.Skipped {
		k := fmt.Sprintf("skip:%v", s)
		if !seen[k] {
			seen[k] = true
			skips = append(skips, s)
		}
	}
	w.mu.Unlock()
	for _, p := range fresh {
		w.m.skipped.inc()
		w.log.Warn("skipped: invalid container metadata", "container", name, "key", p.Key, "reason", p.Reason)
	}
	if ignored && spec.Ignored != "not running" {
		w.log.Info("ignored: "+spec.Ignored, "container", name)
	}
	for _, s := range skips {
		w.log.Info("ignored: port skipped", "container", name, "port", s.String())
	}
}

// apply registers what is desired and missing or changed, and deregisters what container id
// owns and is no longer desired.
func (w *Watcher) apply(ctx context.Context, id, name, why string, desired []registry.Instance) (int, error) {
	w.mu.Lock()
	var stale []string
	want := map[string]bool{}
	for _, inst := range desired {
		want[inst.ID] = true
	}
	for iid, o := range w.owned {
		if o.container == id && !want[iid] {
			stale = append(stale, iid)
		}
	}
	var todo []registry.Instance
	for _, inst := range desired {
		hash := inst.Meta[MetaSpec]
		if o, ok := w.owned[inst.ID]; ok && o.hash == hash && o.container == id {
			continue
		}
		if w.failed[inst.ID] == hash {
			continue
		}
		todo = append(todo, inst)
	}
	w.mu.Unlock()
	slices.Sort(stale)

	writes := 0
	var firstErr error
	for _, inst := range todo {
		wrote, err := w.register(ctx, name, inst)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if wrote {
			writes++
		}
	}
	for _, iid := range stale {
		wrote, err := w.deregisterOwned(ctx, id, name, iid, why)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if wrote {
			writes++
		}
	}
	return writes, firstErr
}

// deregisterOwned removes instance iid if container id still owns it: another container may
// have taken the ID over meanwhile (a container recreated under the same name).
func (w *Watcher) deregisterOwned(ctx context.Context, id, name, iid, why string) (bool, error) {
	unlock := w.idLocks.Lock(iid)
	defer unlock()
	w.mu.Lock()
	o, ok := w.owned[iid]
	w.mu.Unlock()
	if ok && o.container != id {
		return false, nil
	}
	return true, w.deregisterLocked(ctx, name, iid, why)
}

// register writes one instance. Errors the registry will repeat (invalid input, unsupported
// check) are logged once and not retried until the container changes; others are returned.
func (w *Watcher) register(ctx context.Context, container string, inst registry.Instance) (bool, error) {
	unlock := w.idLocks.Lock(inst.ID)
	defer unlock()
	reg, err := w.registry(ctx)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	err = reg.Register(cctx, inst)
	cancel()
	if err != nil && errors.Is(err, registry.ErrUnsupported) && len(inst.Checks) > 0 {
		// Registrator ignored checks where the registry runs none: register without them.
		w.log.Warn("skipped: the backend does not run this check; registering without it", "container", container, "id", inst.ID, "check", string(inst.Checks[0].Kind), "reason", err)
		w.m.skipped.inc()
		inst.Checks = nil
		cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
		err = reg.Register(cctx, inst)
		cancel()
	}
	hash := inst.Meta[MetaSpec]
	if err != nil {
		w.m.failures.inc("register")
		if permanent(err) {
			w.mu.Lock()
			w.failed[inst.ID] = hash
			w.mu.Unlock()
			w.log.Error("failed: registry refused the instance", "container", container, "id", inst.ID, "service", inst.Name, "error", err)
			return false, nil
		}
		w.registryFailed(err)
		w.log.Warn("failed: register", "container", container, "id", inst.ID, "service", inst.Name, "error", err)
		return false, err
	}
	w.registryOK()
	w.mu.Lock()
	_, existed := w.owned[inst.ID]
	if w.touched != nil {
		w.touched[inst.ID] = true
	}
	w.wroteAt[inst.ID] = time.Now()
	w.owned[inst.ID] = ownedInst{container: inst.Meta[MetaContainer], cname: container, name: inst.Name, hash: hash, ttl: inst.TTL, health: inst.Health}
	delete(w.failed, inst.ID)
	w.beatAt[inst.ID] = time.Now()
	n := len(w.owned)
	w.mu.Unlock()
	w.m.instances.set(float64(n))
	w.m.registrations.inc()
	verb := "added"
	if existed {
		verb = "updated"
	}
	args := []any{"service", inst.Name, "id", inst.ID, "address", registry.HostPort(inst.Address, inst.Port), "container", container}
	if inst.Health != "" {
		args = append(args, "health", inst.Health)
	}
	w.log.Info(verb, args...)
	return true, nil
}

// deregister removes instance id, whoever owns it.
func (w *Watcher) deregister(ctx context.Context, container, id, why string) error {
	unlock := w.idLocks.Lock(id)
	defer unlock()
	return w.deregisterLocked(ctx, container, id, why)
}

func (w *Watcher) deregisterLocked(ctx context.Context, container, id, why string) error {
	reg, err := w.registry(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	err = reg.Deregister(cctx, id)
	cancel()
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		w.m.failures.inc("deregister")
		w.registryFailed(err)
		w.log.Warn("failed: deregister", "container", container, "id", id, "error", err)
		return err
	}
	w.registryOK()
	w.mu.Lock()
	if w.touched != nil {
		w.touched[id] = true
	}
	w.wroteAt[id] = time.Now()
	delete(w.owned, id)
	delete(w.failed, id)
	delete(w.beatAt, id)
	n := len(w.owned)
	w.mu.Unlock()
	w.m.instances.set(float64(n))
	w.m.deregistrations.inc()
	w.log.Info("removed", "id", id, "container", container, "reason", why)
	return nil
}

func permanent(err error) bool {
	return errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnsupported)
}

// requestReconcile asks the reconcile loop for a full pass; requests coalesce.
func (w *Watcher) requestReconcile(reason string) {
	select {
	case w.reconcile <- reason:
	default:
	}
}

func (w *Watcher) reconcileLoop(ctx context.Context) {
	var tick <-chan time.Time
	if w.opt.Resync > 0 {
		t := time.NewTicker(w.opt.Resync)
		defer t.Stop()
		tick = t.C
	}
	retry := time.Duration(0)
	var retryC <-chan time.Time
	for {
		var reason string
		select {
		case <-ctx.Done():
			return
		case reason = <-w.reconcile:
		case <-tick:
			reason = "resync"
		case <-retryC:
			reason = "retry"
		}
		if _, err := w.Reconcile(ctx, reason); err != nil && ctx.Err() == nil {
			retry = min(max(2*retry, 500*time.Millisecond), w.opt.MaxBackoff)
			w.log.Error("failed: reconcile", "reason", reason, "error", err, "retry_in", retry)
			retryC = time.After(retry)
		} else {
			retry, retryC = 0, nil
		}
	}
}

// ReconcileResult summarises one reconcile.
type ReconcileResult struct {
	Containers int
	Writes     int
	Took       time.Duration
}

// Reconcile makes the registry match the running containers: what runs and is missing or
// changed is registered, what this node owns and no longer runs is removed, and nothing is
// written when nothing changed. With Cleanup it also removes Registrator-style leftovers of
// this node.
func (w *Watcher) Reconcile(ctx context.Context, reason string) (ReconcileResult, error) {
	w.reconcileMu.Lock()
	defer w.reconcileMu.Unlock()
	start := time.Now()
	w.m.reconciles.inc(reason)
	w.mu.Lock()
	w.touched = map[string]bool{}
	w.lostPending = false
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.touched = nil
		w.mu.Unlock()
	}()
	owned, legacy, err := w.listOwned(ctx)
	if err != nil {
		w.m.failures.inc("reconcile")
		return ReconcileResult{}, err
	}
	lctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	lf := filters.NewArgs()
	for _, l := range w.opt.Labels {
		lf.Add("label", l)
	}
	running, err := w.docker.ContainerList(lctx, container.ListOptions{Filters: lf})
	cancel()
	if err != nil {
		w.m.failures.inc("list")
		return ReconcileResult{}, fmt.Errorf("docker: list containers: %w", err)
	}

	ids := map[string]bool{}
	for _, c := range running {
		ids[c.ID] = true
	}
	w.mu.Lock()
	// What was written since the snapshot was read is newer than the snapshot.
	for id := range w.touched {
		if o, ok := w.owned[id]; ok {
			owned[id] = o
		} else {
			delete(owned, id)
		}
	}
	w.owned = owned
	for _, o := range owned {
		ids[o.container] = true
	}
	n := len(w.owned)
	w.mu.Unlock()
	w.m.instances.set(float64(n))
	w.m.containers.set(float64(len(running)))

	var (
		mu       sync.Mutex
		writes   int
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan string)
	)
	for range w.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				n, err := w.syncContainer(ctx, id)
				mu.Lock()
				writes += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					w.retryLater(id, err)
				}
			}
		}()
	}
	for id := range ids {
		if id != "" {
			next <- id
		}
	}
	close(next)
	wg.Wait()

	if w.opt.Cleanup {
		writes += w.cleanup(ctx, legacy)
	}
	w.mu.Lock()
	w.reconciled = true
	w.mu.Unlock()
	res := ReconcileResult{Containers: len(running), Writes: writes, Took: time.Since(start)}
	w.m.reconcileTime.observe(res.Took.Seconds())
	w.m.reconcileWrites.set(float64(writes))
	w.log.Info("reconciled", "reason", reason, "containers", res.Containers, "writes", writes, "took", res.Took.Round(time.Millisecond))
	if firstErr != nil {
		return res, firstErr
	}
	return res, nil
}

// listOwned reads from the registry every instance this node owns, and the unmarked entries in
// Registrator's ID format for this node (candidates for Cleanup).
func (w *Watcher) listOwned(ctx context.Context) (map[string]ownedInst, []registry.Instance, error) {
	reg, err := w.registry(ctx)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	defer cancel()
	svcs, err := reg.Services(cctx)
	if err != nil {
		w.registryFailed(err)
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	type result struct {
		insts []registry.Instance
		err   error
	}
	results := make([]result, len(svcs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.opt.Workers)
	for i, s := range svcs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			insts, err := reg.Instances(cctx, registry.Query{Name: s.Name})
			results[i] = result{insts, err}
		}()
	}
	wg.Wait()
	owned := map[string]ownedInst{}
	var legacy []registry.Instance
	node := w.opt.Spec.Node
	for i, r := range results {
		if r.err != nil {
			if errors.Is(r.err, registry.ErrNotFound) {
				continue // the service went away between the two calls
			}
			w.registryFailed(r.err)
			return nil, nil, fmt.Errorf("list instances of %s: %w", svcs[i].Name, r.err)
		}
		for _, inst := range r.insts {
			switch {
			case inst.Meta[MetaNode] == node && inst.Meta[MetaScope] == w.scope:
				owned[inst.ID] = ownedInst{container: inst.Meta[MetaContainer], name: inst.Name, hash: inst.Meta[MetaSpec], ttl: inst.TTL, health: inst.Health}
			case inst.Meta[MetaNode] == "" && registratorID(inst.ID, node):
				legacy = append(legacy, inst)
			}
		}
	}
	w.registryOK()
	return owned, legacy, nil
}

// registratorID reports whether id has Registrator's shape for this node:
// <node>:<container name>:<port>[:udp].
func registratorID(id, node string) bool {
	rest, ok := strings.CutPrefix(id, node+":")
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, ":udp")
	name, port, ok := strings.Cut(rest, ":")
	if !ok || name == "" || port == "" {
		return false
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return false
		}
	}
	for _, r := range name {
		if !(r == '_' || r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// cleanup removes the unmarked Registrator-format entries of this node that sdctl does not
// register itself now: leftovers of Registrator, or duplicates of what sdctl registered since.
func (w *Watcher) cleanup(ctx context.Context, legacy []registry.Instance) int {
	writes := 0
	for _, inst := range legacy {
		w.mu.Lock()
		_, ownedNow := w.owned[inst.ID]
		w.mu.Unlock()
		if ownedNow {
			continue // re-registered with sdctl's marks during this reconcile
		}
		rest := strings.TrimPrefix(inst.ID, w.opt.Spec.Node+":")
		cname, _, _ := strings.Cut(rest, ":")
		if w.scope != "" && !w.mayClean(ctx, cname) {
			continue
		}
		if err := w.deregister(ctx, cname, inst.ID, "dangling: a Registrator-format entry of this node"); err == nil {
			writes++
		}
	}
	return writes
}

// mayClean reports whether a scoped watcher may remove a leftover entry of the container named
// cname: when no such container exists, or it is one this watcher watches.
func (w *Watcher) mayClean(ctx context.Context, cname string) bool {
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	defer cancel()
	c, err := w.docker.ContainerInspect(cctx, cname)
	switch {
	case cerrdefs.IsNotFound(err):
		return true
	case err != nil:
		return false // cannot tell: leave it for the next reconcile
	}
	return w.selected(c)
}

// heartbeatLoop renews TTL instances: every TTLRefresh, or every TTL/2 of each instance.
// Instances whose container reports unhealthy are not renewed.
func (w *Watcher) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var due []string
		w.mu.Lock()
		for id, o := range w.owned {
			if o.ttl <= 0 || o.health == registry.HealthCritical || w.kept[o.container] {
				continue // kept containers exited: their TTL runs out, as with Registrator
			}
			every := o.ttl / 2
			if w.opt.TTLRefresh > 0 && w.opt.TTLRefresh < every {
				every = w.opt.TTLRefresh
			}
			if now.Sub(w.beatAt[id]) >= every {
				due = append(due, id)
			}
		}
		w.mu.Unlock()
		for _, id := range due {
			w.heartbeat(ctx, id)
		}
	}
}

func (w *Watcher) heartbeat(ctx context.Context, id string) {
	reg, err := w.registry(ctx)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, w.opt.CallTimeout)
	err = reg.Heartbeat(cctx, id)
	cancel()
	w.mu.Lock()
	o := w.owned[id]
	if err == nil {
		w.beatAt[id] = time.Now()
	}
	w.mu.Unlock()
	switch {
	case err == nil:
		w.m.heartbeats.inc()
		w.registryOK()
	case errors.Is(err, registry.ErrNotFound):
		// Gone from the registry (expired, removed by hand, or a registry that lost its
		// state): register it again, and check everything else this node owns, which is
		// likely gone too.
		w.mu.Lock()
		delete(w.owned, id)
		w.mu.Unlock()
		w.log.Warn("instance missing from the registry; reconciling", "id", id)
		w.enqueue(o.container)
		w.requestReconcile("instance-missing")
	default:
		w.m.failures.inc("heartbeat")
		w.registryFailed(err)
		w.log.Warn("failed: heartbeat", "id", id, "error", err)
	}
}

// pluginLoop notices a dead backend process even when no call is due, restarts it, and so
// triggers a reconcile.
func (w *Watcher) pluginLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.regMu.Lock()
		dead := w.reg == nil || w.reg.Exited()
		w.regMu.Unlock()
		if dead {
			w.m.registryUp.set(0)
			if _, err := w.registry(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("failed: restart backend", "error", err)
			}
		}
	}
}

// deregisterAll removes every instance this node owns (--deregister-on-exit).
func (w *Watcher) deregisterAll(ctx context.Context) {
	owned, _, err := w.listOwned(ctx)
	if err != nil {
		w.log.Error("failed: deregister on exit: list what this node owns", "error", err)
		w.mu.Lock()
		owned = maps.Clone(w.owned)
		w.mu.Unlock()
	}
	ids := make([]string, 0, len(owned))
	for id := range owned {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	failed := 0
	for _, id := range ids {
		if err := w.deregister(ctx, short(owned[id].container), id, "watcher exiting (--deregister-on-exit)"); err != nil {
			failed++
		}
	}
	if failed > 0 {
		w.log.Error("failed: deregister on exit left instances registered", "instances", failed)
		return
	}
	w.log.Info("deregistered everything this node owns", "instances", len(ids))
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// keyedMutex serialises work per key (container ID).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
