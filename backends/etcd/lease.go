package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/registry"
)

// Heartbeat renews the lease of instance id (KeepAliveOnce). If the lease ran out between
// reading the key and renewing it, the instance is written again with a new lease; once the
// key is gone, Heartbeat fails with registry.ErrNotFound and the caller registers again.
func (b *Backend) Heartbeat(ctx context.Context, id string) error {
	hint, err := b.beginID(ctx, id)
	if err != nil {
		return err
	}
	err = b.retry(ctx, func(ctx context.Context) error {
		insts, err := b.lookup(ctx, id, hint)
		if err != nil {
			return err
		}
		if len(insts) == 0 {
			return registry.Errorf(registry.ErrNotFound, "heartbeat %q: no such instance under %s/ in %s (expired, or never registered)", id, b.opts.Prefix, b.where)
		}
		for _, li := range insts {
			if li.kv.Lease == 0 {
				return registry.Invalidf("ttl", "instance %q was registered without a TTL, so it has nothing to renew (register it with --ttl)", id)
			}
		}
		for _, li := range insts {
			if err := b.renew(ctx, li); err != nil {
				return err
			}
			hint = string(li.kv.Key)
		}
		return nil
	})
	if err != nil {
		return b.wrap(err, hint)
	}
	b.setHint(id, hint)
	return nil
}

// leased is an instance with the key-value it was read from.
type leased struct {
	inst registry.Instance
	kv   *mvccpb.KeyValue
}

// lookup reads the keys of instance id that hold valid sdctl values: the hinted key alone
// when it exists, else every key of that ID under the prefix.
func (b *Backend) lookup(ctx context.Context, id, hint string) ([]leased, error) {
	var kvs []*mvccpb.KeyValue
	if hint != "" {
		resp, err := b.cli.Get(ctx, hint)
		if err != nil {
			return nil, err
		}
		kvs = resp.Kvs
	}
	if len(kvs) == 0 {
		var err error
		if kvs, err = b.find(ctx, id, "", true); err != nil {
			return nil, err
		}
	}
	var out []leased
	for _, kv := range kvs {
		name, kid, ok := b.keys.parse(string(kv.Key))
		if !ok || kid != id {
			continue
		}
		inst, err := decodeValue(name, kid, kv.Value)
		if err != nil {
			b.warnBadValue(string(kv.Key), kv.ModRevision, err)
			continue
		}
		out = append(out, leased{inst, kv})
	}
	return out, nil
}

// renew keeps li's lease alive, or writes li's key again with a new lease when the old one is
// gone and the key has not been written since.
func (b *Backend) renew(ctx context.Context, li leased) error {
	_, err := b.cli.KeepAliveOnce(ctx, clientv3.LeaseID(li.kv.Lease))
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) {
		return err
	}
	ttl := li.inst.TTL
	if ttl <= 0 {
		return registry.Invalidf("ttl", "instance %q holds a lease but no TTL in its value; register it again", li.inst.ID)
	}
	grant, err := b.cli.Grant(ctx, leaseSeconds(ttl))
	if err != nil {
		return err
	}
	key := string(li.kv.Key)
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(li.kv.Value), clientv3.WithLease(grant.ID))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		// Registered again meanwhile, with a lease of its own: nothing to restore, and the
		// new lease is not needed.
		b.revoke(ctx, grant.ID)
		return nil
	}
	b.log.Warn("the instance's lease had expired; wrote it again with a new lease", "id", li.inst.ID, "key", key)
	return nil
}

// revoke ends a lease that no key of the instance uses any more, so it does not linger until
// it expires. Failure is harmless (the lease expires by itself) and not reported.
func (b *Backend) revoke(ctx context.Context, lease clientv3.LeaseID) {
	if _, err := b.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		b.log.Debug("revoking a replaced lease failed; it will expire by itself", "lease", fmt.Sprintf("%x", int64(lease)), "error", err.Error())
	}
}

// leaseSeconds converts a TTL into etcd's whole seconds, rounding up so an instance never
// expires before its TTL.
func leaseSeconds(ttl time.Duration) int64 {
	return max(1, int64(math.Ceil(ttl.Seconds())))
}
