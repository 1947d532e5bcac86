package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/registry"
)

// Register writes inst's key, replacing the instance with the same ID (under this or another
// service name) in the same transaction. With a TTL the key is attached to a new lease of
// that TTL, rounded up to whole seconds (etcd may raise it to its minimum, 2s with default
// settings); the previous lease of the instance is revoked. inst.Health is stored as the
// declared health, replacing (or, when empty, dropping) the one declared before, while an
// explicit health set by an operator in the old value ("maintenance") is kept; the worse of
// the two is reported.
//
// Register is safe to repeat, so it retries by itself while the cluster elects a leader; an
// error means the registration may or may not have landed and should be retried.
func (b *Backend) Register(ctx context.Context, inst registry.Instance) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := inst.Validate(); err != nil {
		return err
	}
	if len(inst.Checks) > 0 {
		return fmt.Errorf("the etcd backend runs no health checks; register with --ttl and keep the instance alive with --keepalive (or heartbeats), or use the consul backend: %w", registry.ErrUnsupported)
	}
	key := b.keys.instance(inst.Name, inst.ID)
	var lease clientv3.LeaseID
	err := b.retry(ctx, func(ctx context.Context) error {
		for {
			// The lease survives a failed attempt: granting again would leave one more lease
			// to expire unused. It is granted again only if it expired meanwhile.
			if inst.TTL > 0 && lease == 0 {
				resp, err := b.cli.Grant(ctx, leaseSeconds(inst.TTL))
				if err != nil {
					return err
				}
				lease = resp.ID
			}
			err := b.put(ctx, inst, key, lease)
			if lease != 0 && errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
				lease = 0
				continue
			}
			return err
		}
	})
	if err != nil {
		return b.wrap(err, key)
	}
	b.setHint(inst.ID, key)
	return nil
}

// put writes inst at key with lease (0 for none) unless it is already there, deleting the
// instance's keys under other names, then revokes the leases they held. The transaction only
// applies if none of the keys it replaces changed since they were read (and the key is still
// absent if it was), so two writers of one instance cannot interleave into a duplicate; on a
// conflict it reads again.
func (b *Backend) put(ctx context.Context, inst registry.Instance, key string, lease clientv3.LeaseID) error {
	for {
		found, err := b.find(ctx, inst.ID, key, true)
		if err != nil {
			return err
		}
		// Only the operator's health carries over; a declared one is replaced by inst.Health.
		var health registry.Health
		var current *mvccpb.KeyValue
		for _, kv := range found {
			if name, id, ok := b.keys.parse(string(kv.Key)); ok {
				if _, prev, err := decodeMetadata(name, id, kv.Value); err == nil && prev.Health != "" && prev.Health != registry.HealthPassing {
					health = prev.Health
				}
			}
			if string(kv.Key) == key {
				current = kv
			}
		}
		value, err := encodeValue(inst, health)
		if err != nil {
			return err
		}
		if len(found) == 1 && current != nil && lease == 0 && current.Lease == 0 && bytes.Equal(current.Value, value) {
			// Reconciling watchers register what they own again and again: a write that
			// changes nothing would only wake every watcher for nothing.
			return nil
		}

		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		if current != nil {
			cmps[0] = clientv3.Compare(clientv3.ModRevision(key), "=", current.ModRevision)
		}
		var ops []clientv3.Op
		for _, kv := range found {
			if string(kv.Key) != key {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			}
		}
		if lease != 0 {
			ops = append(ops, clientv3.OpPut(key, string(value), clientv3.WithLease(lease)))
		} else {
			ops = append(ops, clientv3.OpPut(key, string(value)))
		}
		resp, err := b.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			continue
		}
		for _, kv := range found {
			if kv.Lease != 0 && clientv3.LeaseID(kv.Lease) != lease && b.ours(kv) {
				b.revoke(ctx, clientv3.LeaseID(kv.Lease))
			}
		}
		return nil
	}
}

// ours reports whether kv holds an instance sdctl wrote, whose lease no other key shares.
func (b *Backend) ours(kv *mvccpb.KeyValue) bool {
	name, id, ok := b.keys.parse(string(kv.Key))
	if !ok {
		return false
	}
	_, err := decodeValue(name, id, kv.Value)
	return err == nil
}

// Deregister deletes the keys of instance id and revokes their leases.
func (b *Backend) Deregister(ctx context.Context, id string) error {
	hint, err := b.beginID(ctx, id)
	if err != nil {
		return err
	}
	// A delete whose answer was lost may have landed; if a retry then finds nothing, the
	// instance is gone as asked, not missing.
	var attempted bool
	err = b.retry(ctx, func(ctx context.Context) error {
		found, err := b.find(ctx, id, hint, false)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			if attempted {
				return nil
			}
			return registry.Errorf(registry.ErrNotFound, "no instance %q under %s/ in %s", id, b.opts.Prefix, b.where)
		}
		ops := make([]clientv3.Op, len(found))
		for i, kv := range found {
			ops[i] = clientv3.OpDelete(string(kv.Key), clientv3.WithPrevKV())
		}
		attempted = true
		resp, err := b.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return err
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseDeleteRange().PrevKvs {
				if kv.Lease != 0 && b.ours(kv) {
					b.revoke(ctx, clientv3.LeaseID(kv.Lease))
				}
			}
		}
		return nil
	})
	if err != nil {
		return b.wrap(err, hint)
	}
	b.setHint(id, "")
	return nil
}

// find returns the keys of instance id, with their values when withValues: the key hint
// (where the instance usually is; "" for none) and any key of the same ID under another
// service name, found by a keys-only scan of the prefix.
func (b *Backend) find(ctx context.Context, id, hint string, withValues bool) ([]*mvccpb.KeyValue, error) {
	var valueOpts []clientv3.OpOption
	if !withValues {
		valueOpts = []clientv3.OpOption{clientv3.WithKeysOnly()}
	}
	// One read-only transaction reads the hinted key and scans the prefix.
	ops := []clientv3.Op{clientv3.OpGet(b.keys.root(), clientv3.WithPrefix(), clientv3.WithKeysOnly())}
	if hint != "" {
		ops = append(ops, clientv3.OpGet(hint, valueOpts...))
	}
	resp, err := b.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	var found []*mvccpb.KeyValue
	if hint != "" {
		found = append(found, resp.Responses[1].GetResponseRange().Kvs...)
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		k := string(kv.Key)
		if _, kid, ok := b.keys.parse(k); !ok || kid != id || k == hint {
			continue
		}
		if !withValues {
			found = append(found, kv)
			continue
		}
		r, err := b.cli.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		found = append(found, r.Kvs...)
	}
	return found, nil
}
