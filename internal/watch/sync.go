package watch

// Converging one container: inspect it, build its spec, and write the difference.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

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
		want := spec.Build(c, w.opt.Spec)
		w.report(id, name, want)
		desired = want.Instances
		if w.scope != "" {
			for i := range desired {
				desired[i].Meta[spec.MetaScope] = w.scope
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
func (w *Watcher) report(id, name string, want spec.Spec) {
	w.mu.Lock()
	seen := w.reported[id]
	if seen == nil {
		seen = map[string]bool{}
		w.reported[id] = seen
	}
	var fresh []spec.Problem
	for _, p := range want.Problems {
		k := "problem:" + p.Key + ":" + p.Reason
		if !seen[k] {
			seen[k] = true
			fresh = append(fresh, p)
		}
	}
	ignored := want.Ignored != "" && !seen["ignored:"+want.Ignored]
	if ignored {
		seen["ignored:"+want.Ignored] = true
	}
	var skips []spec.PortSkip
	for _, s := range want.Skipped {
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
	if ignored && want.Ignored != "not running" {
		w.log.Info("ignored: "+want.Ignored, "container", name)
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
		hash := inst.Meta[spec.MetaSpec]
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
	// count adds up the writes made; apply goes on past an error and returns the first one.
	count := func(wrote bool, err error) {
		switch {
		case err != nil && firstErr == nil:
			firstErr = err
		case err == nil && wrote:
			writes++
		}
	}
	for _, inst := range todo {
		count(w.register(ctx, name, inst))
	}
	for _, iid := range stale {
		count(w.deregisterOwned(ctx, id, name, iid, why))
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
	w.writing(inst.ID)
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
	hash := inst.Meta[spec.MetaSpec]
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
	now := w.clk.Now()
	w.wroteAt[inst.ID] = now
	w.owned[inst.ID] = ownedInst{container: inst.Meta[spec.MetaContainer], cname: container, name: inst.Name, hash: hash, ttl: inst.TTL, health: inst.Health}
	delete(w.failed, inst.ID)
	w.beatAt[inst.ID] = now
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
	w.writing(id)
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
	w.wroteAt[id] = w.clk.Now()
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

// writing records that instance id is being written: the registry's stream can show the
// write before the call returns, and must not count it as a change made by someone else.
func (w *Watcher) writing(id string) {
	w.mu.Lock()
	w.wroteAt[id] = w.clk.Now()
	w.mu.Unlock()
}

func permanent(err error) bool {
	return errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnsupported)
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
