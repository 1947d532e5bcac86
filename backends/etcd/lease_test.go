package etcd

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

func TestLeases(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	cli := etcdtest.Client(t, m)
	ctx := ctxFor(t, time.Minute)

	// leaseOf returns the lease of the instance's key (0 without one; fails if missing).
	leaseOf := func(t *testing.T, b *Backend, name, id string) clientv3.LeaseID {
		t.Helper()
		resp, err := cli.Get(ctx, b.keys.instance(name, id))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("Get(%s/%s) = %v, %v", name, id, resp, err)
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	alive := func(t *testing.T, lease clientv3.LeaseID) bool {
		t.Helper()
		resp, err := cli.TimeToLive(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		return resp.TTL > 0
	}
	// registered opens a backend of its own and registers inst through it, returning the
	// backend and the lease of inst's key.
	registered := func(t *testing.T, inst registry.Instance) (*Backend, clientv3.LeaseID) {
		t.Helper()
		b := open(t, Options{}, nil, m)
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
		return b, leaseOf(t, b, inst.Name, inst.ID)
	}
	web1 := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, TTL: 30 * time.Second}

	t.Run("RoundedUpToSeconds", func(t *testing.T) {
		inst := web1
		inst.TTL = 1500 * time.Millisecond
		b, lease := registered(t, inst)
		resp, err := cli.TimeToLive(ctx, lease)
		if err != nil || resp.GrantedTTL != 2 {
			t.Fatalf("lease TimeToLive = %+v, %v; want a granted TTL of 2s", resp, err)
		}
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil || len(got) != 1 || got[0].TTL != inst.TTL {
			t.Fatalf("Instances = %+v, %v; want the registered TTL of 1.5s", got, err)
		}
	})

	t.Run("ReplacedLeaseRevoked", func(t *testing.T) {
		inst := web1
		b, first := registered(t, inst)
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
		second := leaseOf(t, b, "web", "web-1")
		if first == second || alive(t, first) || !alive(t, second) {
			t.Fatalf("leases %x then %x: want a new one and the old one revoked", first, second)
		}
		// Without a TTL the instance becomes permanent.
		inst.TTL = 0
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if l := leaseOf(t, b, "web", "web-1"); l != 0 || alive(t, second) {
			t.Fatalf("after registering without TTL: key lease %x, old lease alive %v", l, alive(t, second))
		}
		if err := b.Heartbeat(ctx, "web-1"); !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("Heartbeat without TTL: %v, want ErrInvalid", err)
		}
	})

	t.Run("DeregisterRevokes", func(t *testing.T) {
		b, lease := registered(t, web1)
		if err := b.Deregister(ctx, "web-1"); err != nil {
			t.Fatal(err)
		}
		if alive(t, lease) {
			t.Fatal("the lease of a deregistered instance is still alive")
		}
	})

	t.Run("LostLeaseRewritten", func(t *testing.T) {
		// The lease ends between the heartbeat's read of the key and its renewal (it expired
		// during a partition, say): the heartbeat writes the key again with a new lease.
		b, _ := registered(t, web1)
		found, err := b.lookup(ctx, "web-1", "")
		if err != nil || len(found) != 1 {
			t.Fatalf("lookup = %v, %v", found, err)
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(found[0].kv.Lease)); err != nil {
			t.Fatal(err)
		}
		if err := b.renew(ctx, found[0]); err != nil {
			t.Fatalf("renew after the lease was lost: %v", err)
		}
		lease := leaseOf(t, b, "web", "web-1")
		if lease == 0 || lease == clientv3.LeaseID(found[0].kv.Lease) || !alive(t, lease) {
			t.Fatalf("key lease %x after the rewrite", lease)
		}
		// Once the key itself is gone, Heartbeat reports it missing so the caller registers
		// again (register --keepalive does).
		if _, err := cli.Revoke(ctx, lease); err != nil {
			t.Fatal(err)
		}
		if err := b.Heartbeat(ctx, "web-1"); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Heartbeat of an expired instance: %v, want ErrNotFound", err)
		}
	})

	t.Run("MovedToAnotherService", func(t *testing.T) {
		x1 := web1
		x1.ID = "x-1"
		b, lease := registered(t, x1)
		x1.Name, x1.TTL = "api", 0
		if err := b.Register(ctx, x1); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]int{"web": 0, "api": 1} {
			got, err := b.Instances(ctx, registry.Query{Name: name})
			if err != nil || len(got) != want {
				t.Errorf("Instances(%s) = %v, %v; want %d", name, ids(got), err, want)
			}
		}
		if alive(t, lease) {
			t.Error("the lease of the replaced key is still alive")
		}
		// A fresh backend (no hint of where x-1 lives) finds it by scanning.
		if err := open(t, Options{Prefix: b.Prefix()}, nil, m).Deregister(ctx, "x-1"); err != nil {
			t.Fatal(err)
		}
		svcs, err := b.Services(ctx)
		if err != nil || len(svcs) != 0 {
			t.Fatalf("Services after Deregister = %+v, %v", svcs, err)
		}
	})
}
