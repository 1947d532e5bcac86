package registrytest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// TestSuite runs the suite against a minimal in-memory registry in each configuration the
// options describe, so the suite itself is tested and shown to ask nothing of a backend
// beyond the Registry contract.
func TestSuite(t *testing.T) {
	for _, opts := range []Options{
		{Name: "Full", TTL: true, Watch: true, MinTTL: 200 * time.Millisecond},
		{Name: "ExpiryDeletes", TTL: true, ExpiryDeletes: true, Watch: true, MinTTL: 200 * time.Millisecond},
		{Name: "Minimal"},
	} {
		Run(t, func(t *testing.T) registry.Registry {
			return &memory{opts: opts, changed: make(chan struct{}), insts: map[string]registry.Instance{}}
		}, opts)
	}
}

// memory is the smallest registry that satisfies the suite for opts.
type memory struct {
	opts    Options
	mu      sync.Mutex
	insts   map[string]registry.Instance
	index   uint64
	changed chan struct{} // closed and replaced on every change
}

// bump records a change; the caller holds mu.
func (m *memory) bump() {
	m.index++
	close(m.changed)
	m.changed = make(chan struct{})
}

// expire applies TTLs at time now; the caller holds mu.
func (m *memory) expire(now time.Time) {
	for id, inst := range m.insts {
		if inst.TTL > 0 && !now.Before(inst.Expires) && m.opts.ExpiryDeletes {
			delete(m.insts, id)
			m.bump()
		}
	}
}

// health reports inst at time now: the declared health it was registered with (passing when
// none), made critical by an expired TTL unless it is already worse.
func (m *memory) health(inst registry.Instance, now time.Time) registry.Instance {
	if inst.TTL > 0 && !now.Before(inst.Expires) {
		inst.Health = inst.Health.Worse(registry.HealthCritical)
	}
	inst.Health = inst.Health.Worse(registry.HealthPassing)
	return inst
}

func (m *memory) Register(_ context.Context, inst registry.Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	if len(inst.Checks) > 0 || (inst.TTL > 0 && !m.opts.TTL) {
		return fmt.Errorf("memory: %w", registry.ErrUnsupported)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst.Expires = time.Now().Add(inst.TTL)
	m.insts[inst.ID] = inst
	m.bump()
	return nil
}

func (m *memory) Deregister(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(time.Now())
	if _, ok := m.insts[id]; !ok {
		return fmt.Errorf("memory: %s: %w", id, registry.ErrNotFound)
	}
	delete(m.insts, id)
	m.bump()
	return nil
}

func (m *memory) Heartbeat(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.expire(now)
	inst, ok := m.insts[id]
	switch {
	case !ok:
		return fmt.Errorf("memory: %s: %w", id, registry.ErrNotFound)
	case inst.TTL <= 0:
		return fmt.Errorf("memory: %s has no TTL: %w", id, registry.ErrInvalid)
	}
	inst.Expires = now.Add(inst.TTL)
	m.insts[id] = inst
	m.bump()
	return nil
}

// snapshot returns the instances matching q, sorted by ID, and the index.
func (m *memory) snapshot(q registry.Query) ([]registry.Instance, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.expire(now)
	out := []registry.Instance{}
	for _, inst := range m.insts {
		if inst = m.health(inst, now); q.Matches(inst) {
			out = append(out, inst)
		}
	}
	slices.SortFunc(out, func(a, b registry.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, m.index
}

func (m *memory) Instances(_ context.Context, q registry.Query) ([]registry.Instance, error) {
	out, _ := m.snapshot(q)
	return out, nil
}

func (m *memory) Services(context.Context) ([]registry.Service, error) {
	all, _ := m.snapshot(registry.Query{})
	var out []registry.Service
	for _, inst := range all {
		i := slices.IndexFunc(out, func(s registry.Service) bool { return s.Name == inst.Name })
		if i < 0 {
			out = append(out, registry.Service{Name: inst.Name})
			i = len(out) - 1
		}
		out[i].Instances++
		if inst.Health == registry.HealthPassing {
			out[i].Passing++
		}
		for _, tag := range inst.Tags {
			if !slices.Contains(out[i].Tags, tag) {
				out[i].Tags = append(out[i].Tags, tag)
			}
		}
	}
	slices.SortFunc(out, func(a, b registry.Service) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memory) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	if !m.opts.Watch {
		return fmt.Errorf("memory: watch: %w", registry.ErrUnsupported)
	}
	var last []registry.Instance
	first := true
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		insts, index := m.snapshot(registry.Query{Name: req.Name})
		send := !slices.EqualFunc(insts, last, func(a, b registry.Instance) bool { return a.ID == b.ID && a.Health == b.Health })
		if first {
			send = req.Index == 0 || req.Index != index
			first = false
		}
		last = insts
		if send {
			if err := fn(registry.Event{Index: index, Instances: insts}); err != nil {
				return err
			}
		}
		// Polling stands in for an expiry timer; a real backend would compute the next expiry.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (m *memory) ClusterStatus(context.Context) (registry.ClusterStatus, error) {
	return registry.ClusterStatus{Backend: "memory", Leader: "local", Members: []registry.Member{{Name: "local", Role: "leader", Leader: true, Health: "ok"}}}, nil
}

func (m *memory) Info(context.Context) (registry.Info, error) {
	info := registry.Info{Name: "memory", Version: "test"}
	if m.opts.TTL {
		info.Capabilities = append(info.Capabilities, registry.CapTTL)
	}
	if m.opts.Watch {
		info.Capabilities = append(info.Capabilities, registry.CapWatch)
	}
	return info, nil
}

func (m *memory) Close() error { return nil }
