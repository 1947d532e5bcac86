package watch

import (
	"context"
	"errors"
	"time"

	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

// How the watcher notices that the registry lost what this node registered (a Consul agent
// restarted without its data, etcd keys deleted, the registry file removed), without
// polling it:
//
//   - It follows the registry's own change stream (Registry.Watch over every service, the
//     same stream `sdctl resolve --watch` uses), and compares the instances marked with this
//     node's identity and scope with what it believes it registered. A difference it did not
//     cause triggers a reconcile. Consul answers with blocking queries held for its `wait`
//     option, etcd pushes on its watch stream, the file backend uses file system
//     notifications: an idle registry costs next to nothing.
//   - A registry call that fails marks the registry down; the first call or stream event that
//     succeeds afterwards brings every scheduled container retry forward and reconciles,
//     since a registry that was away may have come back empty.
//   - A TTL heartbeat that finds its instance gone reconciles the whole node.

// viewGrace is how long an instance the watcher has just written may be missing from (or,
// once removed, still present in) the registry's stream without counting as lost: the stream
// can deliver a state read before the write landed, and Consul copies an agent's services to
// its catalog a moment after it accepted them.
const viewGrace = 2 * time.Second

// followRegistry keeps a watch on every instance of the registry open, restarting it with
// backoff when it ends, and compares each change with what this node owns.
func (w *Watcher) followRegistry(ctx context.Context) {
	var backoff time.Duration
	for ctx.Err() == nil {
		reg, err := w.registry(ctx)
		if err == nil {
			err = reg.Watch(ctx, registry.WatchRequest{}, func(ev registry.Event) error {
				backoff = 0
				w.observeView(ev.Instances)
				return nil
			})
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, registry.ErrUnsupported) {
			w.log.Warn("the backend cannot be watched: instances it loses come back at the next heartbeat or --resync", "error", err)
			return
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), w.opt.MaxBackoff)
		w.mu.Lock()
		w.view = nil // unknown until the stream is back
		w.mu.Unlock()
		t := w.clk.NewTimer(backoff)
		w.log.Warn("registry watch ended; following it again", "error", err, "in", backoff)
		if !sleep(ctx, t) {
			return
		}
	}
}

// observeView records which instances of this node and scope the registry holds, as one
// event of the stream reports them.
func (w *Watcher) observeView(insts []registry.Instance) {
	view := map[string]string{}
	for _, inst := range insts {
		if inst.Meta[spec.MetaNode] == w.opt.Spec.Node && inst.Meta[spec.MetaScope] == w.scope {
			view[inst.ID] = inst.Meta[spec.MetaSpec]
		}
	}
	w.mu.Lock()
	w.view = view
	w.mu.Unlock()
	w.registryOK() // the stream answered: the registry is there
	w.checkView()
}

// checkView compares the registry's view with what the watcher believes it registered, and
// asks for a reconcile when they differ in a way the watcher did not cause. Instances written
// within viewGrace are judged again once it has passed.
func (w *Watcher) checkView() {
	w.mu.Lock()
	if !w.reconciled || w.view == nil {
		w.mu.Unlock()
		return // the first reconcile compares everything anyway
	}
	now := w.clk.Now()
	var recheck time.Duration
	recent := func(id string) bool {
		at, ok := w.wroteAt[id]
		if !ok || now.Sub(at) >= viewGrace {
			return false
		}
		recheck = max(recheck, viewGrace-now.Sub(at))
		return true
	}
	var lost, changed, extra int
	for id, o := range w.owned {
		hash, ok := w.view[id]
		switch {
		case ok && hash == o.hash, recent(id):
		case !ok:
			lost++
		default:
			changed++
		}
	}
	for id := range w.view {
		if _, ok := w.owned[id]; !ok && !recent(id) {
			extra++
		}
	}
	for id, at := range w.wroteAt {
		if now.Sub(at) >= viewGrace {
			delete(w.wroteAt, id)
		}
	}
	if recheck > 0 {
		if w.viewTimer == nil {
			w.viewTimer = w.clk.AfterFunc(recheck, w.checkView)
		} else {
			w.viewTimer.Reset(recheck)
		}
	}
	request := lost+changed+extra > 0 && !w.lostPending
	if request {
		w.lostPending = true
	}
	w.mu.Unlock()
	if request {
		w.m.registryLost.inc()
		w.log.Warn("registry differs from what this node registered; reconciling", "missing", lost, "changed", changed, "unknown", extra)
		w.requestReconcile("registry-changed")
	}
}

// registryOK records a registry call that worked. The first one after a failure brings the
// scheduled retries forward and reconciles: the registry may have come back empty.
func (w *Watcher) registryOK() {
	w.m.registryUp.set(1)
	w.mu.Lock()
	back := w.regDown
	w.regDown = false
	w.mu.Unlock()
	if back {
		w.log.Info("registry answers again; reconciling")
		w.retryNow()
		w.requestReconcile("registry-back")
	}
}

// registryFailed records a registry call that failed for want of the registry.
func (w *Watcher) registryFailed(error) {
	w.m.registryUp.set(0)
	w.mu.Lock()
	w.regDown = true
	w.mu.Unlock()
}

// stopRecovery stops the timer of a pending view check.
func (w *Watcher) stopRecovery() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.viewTimer != nil {
		w.viewTimer.Stop()
	}
	for _, r := range w.retries {
		if r.timer != nil {
			r.timer.Stop()
			r.timer = nil
		}
	}
}
