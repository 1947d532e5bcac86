package watch

// Heartbeats: renew the TTL of the instances this node owns.

import (
	"context"
	"errors"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// heartbeatLoop renews TTL instances: every registry.RenewEvery of each instance's TTL, or every
// TTLRefresh when that is sooner.
// Instances whose container reports unhealthy are not renewed.
func (w *Watcher) heartbeatLoop(ctx context.Context) {
	w.tick(ctx, time.Second, func() {
		for _, id := range w.dueHeartbeats(w.clk.Now()) {
			w.heartbeat(ctx, id)
		}
	})
}

// dueHeartbeats lists the owned instances whose TTL is to be renewed at now.
func (w *Watcher) dueHeartbeats(now time.Time) []string {
	var due []string
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, o := range w.owned {
		if o.ttl <= 0 || o.health == registry.HealthCritical || w.kept[o.container] {
			continue // kept containers exited: their TTL runs out, as with Registrator
		}
		every := registry.RenewEvery(o.ttl)
		if w.opt.TTLRefresh > 0 && w.opt.TTLRefresh < every {
			every = w.opt.TTLRefresh
		}
		if now.Sub(w.beatAt[id]) >= every {
			due = append(due, id)
		}
	}
	return due
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
		w.beatAt[id] = w.clk.Now()
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
