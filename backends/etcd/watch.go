package etcd

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/registry"
)

// Watch calls fn with the instances of req.Name (all when empty) each time that set changes.
//
// It is etcd's list-then-watch: read the set at a revision, then watch the prefix from the next
// revision, so no change is missed or seen twice. Event.Index is the etcd revision the set
// reflects. Resuming at req.Index reads the set as it was at that revision and reports only
// what changed after it; if that revision was compacted away, the current set is reported
// instead. A watch that breaks (leader lost, member gone) resumes after the last revision it
// saw, and one that finds its revision compacted re-lists.
func (b *Backend) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	prefix := b.keys.root()
	if req.Name != "" {
		if err := registry.ValidateName(req.Name); err != nil {
			return err
		}
		prefix = b.keys.service(req.Name)
	}
	w := &watchState{b: b, prefix: prefix, fn: fn}
	resumed := false
	if req.Index > 0 {
		var err error
		if resumed, err = w.resume(ctx, int64(req.Index)); err != nil {
			return err
		}
	}
	if !resumed {
		if err := w.relist(ctx); err != nil {
			return unwrapStop(err)
		}
	}
	return unwrapStop(w.follow(ctx))
}

// stopError carries the callback's error through the watch loop, so no retry logic mistakes
// it for the cluster's.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

func unwrapStop(err error) error {
	var se *stopError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

// watchState is the watched set as of rev, and what the caller was last told.
type watchState struct {
	b      *Backend
	prefix string
	fn     func(registry.Event) error

	set  map[string]registry.Instance // by key; valid instances only
	rev  int64
	sent []registry.Instance // the set in the last event; nil before the first
}

// resume loads the set as it was at rev, which the caller already has. It reports false when
// etcd no longer has (compacted) or does not yet have that revision.
func (w *watchState) resume(ctx context.Context, rev int64) (bool, error) {
	var resp *clientv3.GetResponse
	err := w.b.retry(ctx, func(ctx context.Context) error {
		var err error
		resp, err = w.b.cli.Get(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
		return err
	})
	switch e := rpctypes.Error(err); {
	case errors.Is(e, rpctypes.ErrCompacted), errors.Is(e, rpctypes.ErrFutureRev):
		return false, nil
	case err != nil:
		return false, w.b.wrap(err, w.prefix)
	}
	w.load(resp)
	w.rev = rev
	w.sent = w.current()
	return true, nil
}

// relist reads the current set and reports it if it differs from what was last sent.
func (w *watchState) relist(ctx context.Context) error {
	var resp *clientv3.GetResponse
	err := w.b.retry(ctx, func(ctx context.Context) error {
		var err error
		resp, err = w.b.cli.Get(ctx, w.prefix, clientv3.WithPrefix())
		return err
	})
	if err != nil {
		return w.b.wrap(err, w.prefix)
	}
	w.load(resp)
	w.rev = resp.Header.Revision
	return w.emit()
}

func (w *watchState) load(resp *clientv3.GetResponse) {
	w.set = make(map[string]registry.Instance, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if inst, ok := w.b.decode(kv); ok {
			w.set[string(kv.Key)] = inst
		}
	}
}

// current is the set sorted by ID.
func (w *watchState) current() []registry.Instance {
	out := slices.Collect(maps.Values(w.set))
	if out == nil {
		out = []registry.Instance{}
	}
	slices.SortFunc(out, func(a, b registry.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// emit calls fn with the current set unless the caller already has it.
func (w *watchState) emit() error {
	cur := w.current()
	if w.sent != nil && reflect.DeepEqual(cur, w.sent) {
		return nil
	}
	w.sent = cur
	if err := w.fn(registry.Event{Index: uint64(w.rev), Instances: slices.Clone(cur)}); err != nil {
		return &stopError{err}
	}
	return nil
}

// follow watches the prefix from w.rev+1 until ctx ends, fn fails, or etcd refuses the watch.
func (w *watchState) follow(ctx context.Context) error {
	const firstBackoff = 50 * time.Millisecond
	backoff := firstBackoff
	for {
		if err := w.b.begin(ctx); err != nil {
			return err
		}
		start := time.Now()
		err := w.watchOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errRelist):
			w.b.log.Debug("the watch's revision was compacted; re-listing", "prefix", w.prefix, "revision", w.rev+1)
			if err := w.relist(ctx); err != nil {
				return err
			}
			continue
		case err != nil && !retryable(err):
			return err
		}
		// A watch that ran a while before breaking gets a fresh, short backoff.
		if time.Since(start) > 10*time.Second {
			backoff = firstBackoff
		}
		reason := "closed by the client"
		if err != nil {
			reason = err.Error()
		}
		w.b.log.Debug("the etcd watch broke; resuming", "prefix", w.prefix, "revision", w.rev+1, "reason", reason)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// errRelist says the watch's start revision was compacted: read the whole set again.
var errRelist = errors.New("watch revision compacted")

// watchOnce runs one etcd watch from w.rev+1. It returns nil when the watch channel closes
// without an error (the client gave up on it), errRelist after a compaction, fn's error, or
// the watch's error (retryable ones are resumed by follow).
func (w *watchState) watchOnce(ctx context.Context) error {
	// RequireLeader: a member cut off from the cluster ends the watch ("no leader") instead of
	// keeping it open and silent; follow then resumes on another member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.b.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return errRelist
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if retryable(err) {
				return err
			}
			return w.b.wrap(err, w.prefix)
		}
		if len(resp.Events) == 0 {
			continue // progress notification or the watch's creation
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case clientv3.EventTypePut:
				if inst, ok := w.b.decode(ev.Kv); ok {
					w.set[key] = inst
				} else {
					delete(w.set, key)
				}
			case clientv3.EventTypeDelete:
				delete(w.set, key)
			}
			w.rev = max(w.rev, ev.Kv.ModRevision)
		}
		if err := w.emit(); err != nil {
			return err
		}
	}
	return ctx.Err()
}
