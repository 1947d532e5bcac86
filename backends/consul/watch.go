package consul

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// Backoff after a failed read in a watch: from backoffMin, doubling, up to backoffMax, each
// wait drawn at random from its upper half so that many watchers do not retry in step. The
// cap is short because a watch is how `sdctl watch` notices an agent that came back empty:
// it must see the agent within seconds of its return, at the cost of one failed request every
// 1-2 s per watch while Consul is away.
const (
	backoffMin = 250 * time.Millisecond
	backoffMax = 2 * time.Second
)

// Watch follows one service with blocking queries on /v1/health/service/<name>, or every
// service with blocking queries on the catalog's service list and on the checks (so that
// both registrations and health changes wake it). It calls fn with the full set after each
// change, skipping answers that change nothing. Event.Index is Consul's raft index; it can go
// back when Consul's does (a snapshot restore, a failover to a server that lags or belongs to
// another cluster), and the watch then starts over from Consul's state. Reads that fail are
// retried with a growing, jittered backoff, on the next address when there are several;
// permission and input errors end the watch.
func (b *Backend) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	read := b.serviceSnapshot(req.Name)
	if req.Name == "" {
		read = b.allSnapshot()
	} else if err := registry.ValidateName(req.Name); err != nil {
		return err
	}

	index := req.Index
	var last []registry.Instance
	sent := false // whether last is what the caller has
	delay := time.Duration(0)
	for {
		if err := b.begin(ctx); err != nil {
			return err
		}
		insts, got, err := read(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, registry.ErrUnavailable) {
				return err
			}
			delay = min(max(2*delay, backoffMin), backoffMax)
			wait := delay/2 + rand.N(delay/2+1)
			b.log.Warn("consul watch: read failed; retrying", "service", req.Name, "in", wait.Round(time.Millisecond).String(), "error", err)
			if err := sleep(ctx, wait); err != nil {
				return err
			}
			// The next read may reach another server, whose index can be behind this one's
			// (a lagging follower, or another cluster behind the list): a blocking query would
			// then hold for the whole wait. Read without blocking first; an unchanged set is
			// not sent again.
			index = 0
			continue
		}
		delay = 0
		if got == 0 {
			// No X-Consul-Index (a proxy dropped it?): blocking is impossible, so poll.
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		switch {
		case index == 0:
			// The first read, or a reset: always news.
		case got == index:
			// The hold ran out without a change.
			if !sent && req.Index == index && insts != nil {
				// Resuming at the caller's index: this is the state the caller has.
				last, sent = insts, true
			}
			continue
		case got < index:
			// The index went backwards (a snapshot restore, another cluster behind the
			// same address): start over from what Consul says now.
			b.log.Warn("consul watch: index went backwards; starting over", "service", req.Name, "from", index, "to", got)
		}
		index = got
		if sent && sameInstances(insts, last) {
			continue
		}
		last, sent = insts, true
		if err := fn(registry.Event{Index: got, Instances: insts}); err != nil {
			return err
		}
	}
}

// snapshotFunc reads the watched set; with index > 0 it first waits (up to the wait option)
// for Consul's index to move past index. It returns the set (never nil once read; nil when an
// unchanged index made reading it pointless) and the index it reflects.
type snapshotFunc func(ctx context.Context, index uint64) ([]registry.Instance, uint64, error)

func (b *Backend) serviceSnapshot(name string) snapshotFunc {
	return func(ctx context.Context, index uint64) ([]registry.Instance, uint64, error) {
		entries, got, err := b.health(ctx, name, false, index)
		if err != nil {
			return nil, 0, err
		}
		return instances(entries, registry.Query{}), got, nil
	}
}

// allReadGap is the least time between two reads of every instance after changes. Each read
// costs one request per service and decodes every instance, and changes come in bursts (a host
// starting its containers, each registered by `sdctl watch`): without a gap, a burst of N
// registrations among N instances costs N reads of up to N instances each. With it, a change
// after a quiet period is read at once, and a burst once per gap. Only the watch of every
// service (the watcher's) has it; a watch of one service reads each change at once.
const allReadGap = time.Second

// allSnapshot reads every instance. The index is the larger of the service list's and the
// checks' indexes, read before the instances: a change after those reads moves one of them
// past it, so the next wait cannot miss it. After a change it waits until allReadGap has
// passed since its last read.
func (b *Backend) allSnapshot() snapshotFunc {
	var last time.Time
	return func(ctx context.Context, index uint64) ([]registry.Instance, uint64, error) {
		if index > 0 {
			got, err := b.waitAll(ctx, index)
			if err != nil || got == index {
				return nil, got, err
			}
			if err := sleep(ctx, time.Until(last.Add(allReadGap))); err != nil {
				return nil, 0, err
			}
		}
		last = time.Now()
		names, si, err := b.serviceNames(ctx, 0)
		if err != nil {
			return nil, 0, err
		}
		ci, err := b.checksIndex(ctx, 0)
		if err != nil {
			return nil, 0, err
		}
		insts, err := b.allInstances(ctx, names)
		if err != nil {
			return nil, 0, err
		}
		return insts, max(si, ci), nil
	}
}

// waitAll blocks until the service list or any check changes past index, or the hold runs
// out (then it returns index). Both queries run at once; the first to see a change wins.
func (b *Backend) waitAll(ctx context.Context, index uint64) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		index uint64
		err   error
	}
	results := make(chan result, 2)
	go func() {
		_, got, err := b.serviceNames(ctx, index)
		results <- result{got, err}
	}()
	go func() {
		got, err := b.checksIndex(ctx, index)
		results <- result{got, err}
	}()
	for range 2 {
		r := <-results
		if r.err != nil {
			return 0, r.err
		}
		if r.index != index {
			return r.index, nil
		}
	}
	return index, nil
}

// checksIndex returns the index of the checks table, blocking past index when it is > 0. The
// filter matches no check, so the answer is an empty list whatever the cluster's size: only
// the index matters here.
func (b *Backend) checksIndex(ctx context.Context, index uint64) (uint64, error) {
	_, meta, err := b.read(ctx, index, func(ep *endpoint, q *api.QueryOptions) (meta *api.QueryMeta, err error) {
		q.Filter = `CheckID == ""`
		_, meta, err = ep.api.Health().State(api.HealthAny, q)
		return meta, err
	})
	if err != nil {
		return 0, err
	}
	return lastIndex(meta), nil
}

// sameInstances reports whether two sorted sets are equal in every field a watcher sees.
func sameInstances(a, b []registry.Instance) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Instance) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Address == y.Address && x.Port == y.Port &&
			x.Weight == y.Weight && x.Drain == y.Drain && x.TTL == y.TTL && x.Health == y.Health && x.Node == y.Node &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
