package etcd

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/registry"
)

// Instances returns the instances of q.Name (every instance when empty) that match q, sorted
// by ID. The read is linearizable: it sees every registration acknowledged before it. Values
// under the prefix that are not sdctl instances are skipped with a warning.
func (b *Backend) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	prefix := b.keys.root()
	if q.Name != "" {
		if err := registry.ValidateName(q.Name); err != nil {
			return nil, err
		}
		prefix = b.keys.service(q.Name)
	}
	all, _, err := b.list(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, inst := range all {
		if q.Matches(inst) {
			out = append(out, inst)
		}
	}
	if q.Pick != nil {
		out = registry.PickFrom(out, *q.Pick)
	}
	return out, nil
}

// Services summarises every service under the prefix, sorted by name.
func (b *Backend) Services(ctx context.Context) ([]registry.Service, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	all, _, err := b.list(ctx, b.keys.root())
	if err != nil {
		return nil, err
	}
	return registry.Summarize(all), nil
}

// list reads the instances under prefix (one service's, or the whole registry's), sorted by
// ID, and the revision of the read. Transient failures (no leader during an election, a
// member going away) are retried until ctx ends.
func (b *Backend) list(ctx context.Context, prefix string, opts ...clientv3.OpOption) ([]registry.Instance, int64, error) {
	var resp *clientv3.GetResponse
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		resp, err = b.cli.Get(ctx, prefix, append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
		return err
	})
	if err != nil {
		return nil, 0, b.wrap(err, prefix)
	}
	return b.decodeAll(resp.Kvs), resp.Header.Revision, nil
}

// decodeAll turns key-values under the prefix into instances sorted by ID, skipping (with a
// warning) what sdctl did not write.
func (b *Backend) decodeAll(kvs []*mvccpb.KeyValue) []registry.Instance {
	out := make([]registry.Instance, 0, len(kvs))
	for _, kv := range kvs {
		if inst, ok := b.decode(kv); ok {
			out = append(out, inst)
		}
	}
	slices.SortFunc(out, func(a, b registry.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// decode turns one key-value into an instance; ok is false (and a warning logged once) when
// the key or value is not an sdctl instance.
func (b *Backend) decode(kv *mvccpb.KeyValue) (registry.Instance, bool) {
	key := string(kv.Key)
	name, id, ok := b.keys.parse(key)
	if !ok {
		b.warnBadValue(key, kv.ModRevision, fmt.Errorf("the key is not %s/<service name>/<instance id>", b.opts.Prefix))
		return registry.Instance{}, false
	}
	inst, err := decodeValue(name, id, kv.Value)
	if err != nil {
		b.warnBadValue(key, kv.ModRevision, err)
		return registry.Instance{}, false
	}
	return inst, true
}
