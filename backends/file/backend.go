package file

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Backend is a registry kept in one local JSON file. It holds no state between calls besides
// its configuration: every call reads the file, so several processes (and several Backends in
// one process) share the registry through it.
type Backend struct {
	store   store
	poll    time.Duration
	version string
	// now is the clock for TTLs; tests replace it.
	now func() time.Time
	// pollOnly makes Watch rely on polling alone, as it does where notifications fail.
	pollOnly bool

	closeOnce sync.Once
	closed    chan struct{}
}

// Open returns a backend for the document at opts.Path (DefaultPath when empty). The file and
// its directory are created by the first write.
func Open(opts Options) (*Backend, error) {
	opts, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	return &Backend{
		store:   newStore(opts.Path),
		poll:    opts.PollInterval,
		version: opts.Version,
		now:     time.Now,
		closed:  make(chan struct{}),
	}, nil
}

// Path is the registry document's path as configured. When it is a symbolic link, every call
// reads and writes the file the link leads to at that moment.
func (b *Backend) Path() string { return b.store.path }

// Capabilities lists what the backend supports. It runs no health checks: instances report
// their health through TTLs and heartbeats.
func Capabilities() []registry.Capability {
	return []registry.Capability{registry.CapTTL, registry.CapWatch, registry.CapWeights, registry.CapDrain, registry.CapBatchRegister,
		registry.CheckCapability(registry.CheckTTL)}
}

// begin is the common start of every call.
func (b *Backend) begin(ctx context.Context) error {
	select {
	case <-b.closed:
		return b.store.errClosed()
	default:
	}
	return ctx.Err()
}

// Register adds inst or replaces the instance with the same ID. The only check it takes is a
// registry.CheckTTL one: its initial status (warning or critical until the first heartbeat)
// and deregister-after (drop the instance once its TTL has run out that long) are kept with
// the TTL. inst.Health is stored as the record's declared health, replacing (or, when empty,
// dropping) the one declared before. A health set by hand in the file ("maintenance", say)
// survives re-registration: it is an operator's decision, not part of what a service
// registers. The worse of the two is reported.
func (b *Backend) Register(ctx context.Context, inst registry.Instance) error {
	return b.RegisterBatch(ctx, []registry.Instance{inst})
}

// RegisterBatch registers every instance as Register does, all or none: one lock and one
// rewrite of the file, which is what makes `register -f` with thousands of entries fast. IDs
// must be unique within the batch.
func (b *Backend) RegisterBatch(ctx context.Context, insts []registry.Instance) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	now := b.now()
	recs := make([]record, len(insts))
	seen := make(map[string]struct{}, len(insts))
	for i, inst := range insts {
		rec, err := newRecord(inst, now)
		if err != nil {
			if len(insts) > 1 {
				return fmt.Errorf("instance %d (%s): %w", i+1, abbreviate(inst.ID), err)
			}
			return err
		}
		if _, dup := seen[rec.ID]; dup {
			return registry.Invalidf("instances", "ID %q appears twice in the batch", abbreviate(rec.ID))
		}
		seen[rec.ID] = struct{}{}
		recs[i] = rec
	}
	return b.store.update(ctx, now, func(doc *document) error {
		changed := false
		var added []record
		for _, rec := range recs {
			i, found := doc.find(rec.ID)
			if !found {
				added = append(added, rec)
				continue
			}
			old, err := doc.decoded(i)
			if err != nil {
				return err
			}
			rec.Health = old.Health
			if rec.TTL == 0 && sameRecord(old, &rec) {
				// Reconciling watchers re-register what they own again and again: a write
				// that changes nothing would only wake every watch for nothing.
				continue
			}
			doc.Instances[i] = rec
			changed = true
		}
		if len(added) == 0 && !changed {
			return errUnchanged
		}
		switch {
		case len(added) == 1:
			i, _ := doc.find(added[0].ID)
			doc.Instances = slices.Insert(doc.Instances, i, added[0])
		case len(added) > 1:
			// Inserting one by one would move the whole list for every new record.
			doc.Instances = append(doc.Instances, added...)
			slices.SortFunc(doc.Instances, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
		}
		return nil
	})
}

// newRecord validates inst for the file and builds its record as registered at now.
func newRecord(inst registry.Instance, now time.Time) (record, error) {
	if err := inst.Validate(); err != nil {
		return record{}, err
	}
	var ttlCheck registry.Check
	for _, c := range inst.Checks {
		if c.Kind != registry.CheckTTL {
			return record{}, fmt.Errorf("the file backend runs no health checks; register with --ttl and keep the instance alive with --keepalive (or heartbeats), or use the consul backend: %w", registry.ErrUnsupported)
		}
		ttlCheck = c
	}
	rec := record{
		ID:       inst.ID,
		Name:     inst.Name,
		Address:  inst.Address,
		Port:     inst.Port,
		Tags:     inst.Tags,
		Meta:     inst.Meta,
		Weight:   inst.Weight,
		Drain:    inst.Drain,
		TTL:      inst.TTL,
		Declared: inst.Health,
	}
	if rec.TTL > 0 {
		rec.Expires = now.Add(rec.TTL)
		rec.DeregisterAfter = ttlCheck.DeregisterAfter
		switch ttlCheck.InitialStatus {
		case registry.HealthWarning:
			rec.Initial = registry.HealthWarning
		case registry.HealthCritical:
			// Critical until the first heartbeat, as if the TTL had run out just now: the
			// deregister-after counts from here.
			rec.Expires = now
		}
	}
	return rec, nil
}

// sameRecord reports whether two records register the same thing.
func sameRecord(a, b *record) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Address == b.Address && a.Port == b.Port &&
		a.Weight == b.Weight && a.Drain == b.Drain && a.TTL == b.TTL && a.Health == b.Health && a.Declared == b.Declared &&
		a.Initial == b.Initial && a.DeregisterAfter == b.DeregisterAfter &&
		slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Meta, b.Meta)
}

// Deregister removes the instance with the given ID.
func (b *Backend) Deregister(ctx context.Context, id string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := registry.ValidateID(id); err != nil {
		return err
	}
	return b.store.update(ctx, b.now(), func(doc *document) error {
		i, found := doc.find(id)
		if !found {
			return registry.Errorf(registry.ErrNotFound, "no instance %q in %s", id, b.store.path)
		}
		doc.Instances = slices.Delete(doc.Instances, i, i+1)
		return nil
	})
}

// Heartbeat renews the TTL of the instance with the given ID.
func (b *Backend) Heartbeat(ctx context.Context, id string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := registry.ValidateID(id); err != nil {
		return err
	}
	now := b.now()
	return b.store.update(ctx, now, func(doc *document) error {
		i, found := doc.find(id)
		if !found {
			return fmt.Errorf("heartbeat %q: no such instance in %s: %w", id, b.store.path, registry.ErrNotFound)
		}
		rec, err := doc.decoded(i)
		if err != nil {
			return err
		}
		if rec.expired(now) {
			return fmt.Errorf("heartbeat %q: the instance expired (its TTL ran out more than its deregister-after ago) in %s: %w", id, b.store.path, registry.ErrNotFound)
		}
		if rec.TTL <= 0 {
			return registry.Invalidf("ttl", "instance %q was registered without a TTL, so it has nothing to renew (register it with --ttl)", id)
		}
		rec.Expires = now.Add(rec.TTL)
		rec.Initial = ""
		return nil
	})
}

// Instances returns the instances of q.Name (every instance when empty) that match q.
func (b *Backend) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if q.Name != "" {
		if err := registry.ValidateName(q.Name); err != nil {
			return nil, err
		}
	}
	doc, err := b.store.read(decodeMode{service: q.Name})
	if err != nil {
		return nil, err
	}
	return selectInstances(&doc, q, b.now()), nil
}

// selectInstances filters doc, whose records are sorted by ID, so the result is too. With
// q.Pick it builds only the picked instance.
func selectInstances(doc *document, q registry.Query, now time.Time) []registry.Instance {
	matches := make([]int, 0, len(doc.Instances))
	for i := range doc.Instances {
		r := &doc.Instances[i]
		if (q.Name == "" || r.Name == q.Name) && !r.expired(now) && q.Matches(registry.Instance{Name: r.Name, Tags: r.Tags, Health: r.health(now)}) {
			matches = append(matches, i)
		}
	}
	if q.Pick != nil {
		// As registry.PickFrom: by position among the matches that are not drained.
		live := matches[:0]
		for _, i := range matches {
			if !doc.Instances[i].Drain {
				live = append(live, i)
			}
		}
		matches = live
		if len(matches) > 0 {
			matches = matches[*q.Pick%uint64(len(matches)):][:1]
		}
	}
	out := make([]registry.Instance, 0, len(matches))
	for _, i := range matches {
		out = append(out, doc.Instances[i].instance(now))
	}
	return out
}

// Services summarises every service in the file, sorted by name.
func (b *Backend) Services(ctx context.Context) ([]registry.Service, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	doc, err := b.store.read(decodeMode{})
	if err != nil {
		return nil, err
	}
	now := b.now()
	insts := make([]registry.Instance, 0, len(doc.Instances))
	for i := range doc.Instances {
		if r := &doc.Instances[i]; !r.expired(now) {
			insts = append(insts, registry.Instance{Name: r.Name, Tags: r.Tags, Health: r.health(now)})
		}
	}
	return registry.Summarize(insts), nil
}

// Close ends running watches and makes later calls fail. It may be called more than once.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

var (
	_ registry.Registry        = (*Backend)(nil)
	_ registry.BatchRegisterer = (*Backend)(nil)
)
