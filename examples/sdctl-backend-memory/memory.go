package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// options is the typed form of the backend's config section (`memory:` in sdctl's config file,
// SDCTL_MEMORY_SEED in the environment).
type options struct {
	Seed []string `mapstructure:"seed"`
}

// memory is a registry.Registry held in a map. changed is closed and replaced on every write,
// which wakes every watcher.
type memory struct {
	mu        sync.Mutex
	instances map[string]registry.Instance
	index     uint64
	changed   chan struct{}
	log       *slog.Logger
}

func newMemory(_ context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error) {
	var opts options
	if err := registry.DecodeOptions(section, &opts); err != nil {
		return nil, err
	}
	m := &memory{instances: map[string]registry.Instance{}, changed: make(chan struct{}), log: log}
	for _, s := range opts.Seed {
		name, hostport, ok := strings.Cut(s, "=")
		host, port, err := registry.ParseHostPort(hostport)
		if !ok || err != nil || host == "" {
			return nil, registry.Invalidf("seed", "%q is not NAME=HOST:PORT", s)
		}
		inst := registry.Instance{ID: registry.DefaultID(name, host, port), Name: name, Address: host, Port: port}
		if err := m.Register(context.Background(), inst); err != nil {
			return nil, err
		}
	}
	log.Debug("memory backend configured", "seeded", len(opts.Seed), "pid", os.Getpid())
	return m, nil
}

// bump records a write; the caller holds mu.
func (m *memory) bump() {
	m.index++
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memory) Register(_ context.Context, inst registry.Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	if len(inst.Checks) > 0 {
		return fmt.Errorf("the memory backend runs no health checks: %w", registry.ErrUnsupported)
	}
	// inst.Health is the declared health, kept as given (empty for none): snapshot combines it
	// with the TTL. Re-registering replaces it, so an empty Health drops an earlier declaration.
	inst.Node, inst.Expires = "", time.Time{}
	if inst.TTL > 0 {
		inst.Expires = time.Now().Add(inst.TTL).UTC()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.instances[inst.ID] = inst
	m.bump()
	return nil
}

func (m *memory) Deregister(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.instances[id]; !ok {
		return fmt.Errorf("instance %q: %w", id, registry.ErrNotFound)
	}
	delete(m.instances, id)
	m.bump()
	return nil
}

func (m *memory) Heartbeat(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst, ok := m.instances[id]
	switch {
	case !ok:
		return fmt.Errorf("instance %q: %w", id, registry.ErrNotFound)
	case inst.TTL == 0:
		return registry.Invalidf("id", "instance %q has no TTL to renew", id)
	}
	inst.Expires = time.Now().Add(inst.TTL).UTC()
	m.instances[id] = inst
	m.bump()
	return nil
}

// snapshot returns the instances matching q with their current health, sorted by ID, and the
// index and change channel they belong to.
func (m *memory) snapshot(q registry.Query) ([]registry.Instance, uint64, <-chan struct{}, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := []registry.Instance{}
	var nextExpiry time.Time
	for _, inst := range m.instances {
		// A declared health is an upper bound: an expired TTL makes the instance critical
		// unless it is declared worse (maintenance).
		if inst.TTL > 0 {
			if now.After(inst.Expires) {
				inst.Health = inst.Health.Worse(registry.HealthCritical)
			} else if nextExpiry.IsZero() || inst.Expires.Before(nextExpiry) {
				nextExpiry = inst.Expires
			}
		}
		inst.Health = inst.Health.Worse(registry.HealthPassing)
		if q.Matches(inst) {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, m.index, m.changed, nextExpiry
}

func (m *memory) Instances(_ context.Context, q registry.Query) ([]registry.Instance, error) {
	out, _, _, _ := m.snapshot(q)
	if q.Pick != nil {
		out = registry.PickFrom(out, *q.Pick)
	}
	return out, nil
}

func (m *memory) Services(_ context.Context) ([]registry.Service, error) {
	all, _, _, _ := m.snapshot(registry.Query{})
	return registry.Summarize(all), nil
}

func (m *memory) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	var last []registry.Instance
	sent := false
	for {
		set, index, changed, nextExpiry := m.snapshot(registry.Query{Name: req.Name})
		// Send the first state unless the caller already has it, then every real change.
		if (!sent && (req.Index == 0 || index != req.Index)) || (sent && !sameSet(last, set)) {
			if err := fn(registry.Event{Index: index, Instances: set}); err != nil {
				return err
			}
		}
		last, sent = set, true
		wait := time.Hour
		if !nextExpiry.IsZero() {
			wait = time.Until(nextExpiry) + time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (m *memory) ClusterStatus(_ context.Context) (registry.ClusterStatus, error) {
	m.mu.Lock()
	n := len(m.instances)
	m.mu.Unlock()
	host, _ := os.Hostname()
	return registry.ClusterStatus{
		Backend: "memory",
		Leader:  host,
		Members: []registry.Member{{
			Name: host, Address: fmt.Sprintf("pid %d", os.Getpid()), Role: "leader", Leader: true, Health: "ok",
			Details: map[string]string{"instances": fmt.Sprint(n)},
		}},
		Notes: []string{"instances live in the plugin process and vanish when it stops"},
	}, nil
}

func (m *memory) Info(_ context.Context) (registry.Info, error) {
	return info, nil
}

func (m *memory) Close() error { return nil }

// sameSet reports whether two sorted sets look the same to a client; a heartbeat that only
// moves an expiry is not a change.
func sameSet(a, b []registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Health != b[i].Health || a[i].Address != b[i].Address ||
			a[i].Port != b[i].Port || fmt.Sprint(a[i].Tags, a[i].Meta) != fmt.Sprint(b[i].Tags, b[i].Meta) {
			return false
		}
	}
	return true
}

var _ registry.Registry = (*memory)(nil)
