package watch

// Reconcile: compare what this node owns in the registry with the containers that run, and
// repair the difference (on start, on --resync, and after anything that may have lost events).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

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
		t := w.clk.NewTicker(w.opt.Resync)
		defer t.Stop()
		tick = t.C()
	}
	retry := time.Duration(0)
	var (
		retryT clock.Timer
		retryC <-chan time.Time
	)
	defer func() {
		if retryT != nil {
			retryT.Stop()
		}
	}()
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
		_, err := w.Reconcile(ctx, reason)
		// One retry at a time: a reconcile that ran for another reason moves it or ends it.
		if retryT != nil {
			retryT.Stop()
			retryT, retryC = nil, nil
		}
		if err != nil && ctx.Err() == nil {
			retry = min(max(2*retry, 500*time.Millisecond), w.opt.MaxBackoff)
			retryT = w.clk.NewTimer(retry)
			retryC = retryT.C()
			w.log.Error("failed: reconcile", "reason", reason, "error", err, "retry_in", retry)
		} else {
			retry = 0
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
	start := w.clk.Now()
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

	// Only the IDs are kept: the summaries (labels, ports, networks of every container) can
	// go while the containers are inspected.
	ids := map[string]bool{}
	for _, c := range running {
		ids[c.ID] = true
	}
	nRunning := len(running)
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
	w.m.containers.set(float64(nRunning))

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
	res := ReconcileResult{Containers: nRunning, Writes: writes, Took: w.clk.Since(start)}
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
			case inst.Meta[spec.MetaNode] == node && inst.Meta[spec.MetaScope] == w.scope:
				owned[inst.ID] = ownedInst{container: inst.Meta[spec.MetaContainer], name: inst.Name, hash: inst.Meta[spec.MetaSpec], ttl: inst.TTL, health: inst.Health}
			case inst.Meta[spec.MetaNode] == "" && registratorID(inst.ID, node):
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
