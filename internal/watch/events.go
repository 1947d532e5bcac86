package watch

// The event queue: Docker events become container IDs on a queue, worked by a bounded pool,
// with one retry schedule per container while the registry fails.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/sdctl/sdctl/internal/watch/clock"
)

// retryState is the one retry schedule of a container: the current delay, and the timer of
// the next attempt while one is due.
type retryState struct {
	delay time.Duration
	timer clock.Timer
	at    time.Time
	// gen numbers the schedules: each failure sets a new timer, and one that fired just as
	// it was replaced (its function waiting for mu) finds a later gen and does nothing.
	gen uint64
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
		reason = "docker-reconnect"
		t := w.clk.NewTimer(backoff)
		w.log.Error("docker event stream lost; reconnecting", "error", err, "in", backoff)
		if !sleep(ctx, t) {
			return
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
	at := w.clk.Now()
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
// due replaces that retry rather than adding another, so the registry sees at most one attempt
// per container per delay, whatever the number of events.
func (w *Watcher) retryLater(id string, err error) {
	w.mu.Lock()
	d := w.scheduleRetry(id)
	w.mu.Unlock()
	w.log.Warn("retrying container", "container", short(id), "error", err, "in", d)
}

// scheduleRetry sets the one retry of container id after its next delay, and returns that
// delay. w.mu is held.
func (w *Watcher) scheduleRetry(id string) time.Duration {
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
	r.at = w.clk.Now().Add(d)
	// A new timer rather than Reset: Reset of a timer whose function has already started
	// would run that function a second time, a second schedule.
	if r.timer != nil {
		r.timer.Stop()
	}
	r.gen++
	gen := r.gen
	r.timer = w.clk.AfterFunc(d, func() { w.fireRetry(id, gen) })
	w.m.pending.set(float64(len(w.retries)))
	return d
}

// fireRetry runs when retry gen of container id is due: the schedule ends (its delay stays,
// so a further failure backs off more) and the container is queued. A retry replaced,
// brought forward or cleared while it fired does nothing.
func (w *Watcher) fireRetry(id string, gen uint64) {
	w.mu.Lock()
	r := w.retries[id]
	if r == nil || r.gen != gen || r.timer == nil {
		w.mu.Unlock()
		return
	}
	r.timer = nil
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

// observeLag records how long the registry took to reflect container id's first pending event.
func (w *Watcher) observeLag(id string) {
	w.mu.Lock()
	at, ok := w.eventAt[id]
	delete(w.eventAt, id)
	w.mu.Unlock()
	if ok {
		w.m.eventLag.observe(w.clk.Since(at).Seconds())
	}
}
