package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// Register registers inst with the current agent, replacing a registration with the same ID
// and its checks (replace-existing-checks). The agent runs the checks and syncs the catalog
// before it answers. When the agent cannot be reached the next address takes the
// registration: registering is idempotent by ID, so a retry cannot duplicate it on one agent.
//
// A declared health (inst.Health) is a TTL check of the registration, service:<id>:declared,
// whose status Register then sets on the same agent: Consul keeps the status of a check that
// is registered again, so the registration alone would not change it. Registering without a
// declared health removes the check with the others.
func (b *Backend) Register(ctx context.Context, inst registry.Instance) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := inst.Validate(); err != nil {
		return err
	}
	reg, err := registration(inst)
	if err != nil {
		return err
	}
	ep, err := b.c.do(ctx, op{run: func(ctx context.Context, ep *endpoint) error {
		return ep.api.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	}})
	if err != nil {
		return err
	}
	b.owners.Store(inst.ID, ep)
	if inst.Health == "" {
		return nil
	}
	_, err = b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		return ep.api.Agent().UpdateTTLOpts(declaredCheckID(inst.ID), "declared health: "+string(inst.Health),
			declaredStatus(inst.Health), agentOptions(ctx))
	}})
	if err != nil {
		return fmt.Errorf("consul: %s is registered, but setting its declared health to %s failed (register it again): %w", inst.ID, inst.Health, err)
	}
	return nil
}

// Deregister removes the instance from the agent that holds it, which also removes it from
// the catalog. Deregistering through another agent would not last (the owner's anti-entropy
// puts it back), so the owner is searched for: see onOwner.
func (b *Backend) Deregister(ctx context.Context, id string) error {
	if err := b.beginID(ctx, id); err != nil {
		return err
	}
	err := b.onOwner(ctx, id, ownerOp{
		agent: func(ctx context.Context, ep *endpoint) error {
			_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
				return ep.api.Agent().ServiceDeregisterOpts(id, agentOptions(ctx))
			}})
			return err
		},
		catalog: func(ctx context.Context, node string) error {
			// No agent holds it: it was written to the catalog directly (an external service).
			_, err := b.c.do(ctx, op{run: func(ctx context.Context, ep *endpoint) error {
				_, err := ep.api.Catalog().Deregister(&api.CatalogDeregistration{Node: node, ServiceID: id, Datacenter: b.c.dc},
					(&api.WriteOptions{}).WithContext(ctx))
				return err
			}})
			return err
		},
	})
	if err == nil {
		b.owners.Delete(id)
	}
	return err
}

// Heartbeat passes the instance's TTL check (service:<id>) on the agent that holds it.
func (b *Backend) Heartbeat(ctx context.Context, id string) error {
	if err := b.beginID(ctx, id); err != nil {
		return err
	}
	noTTL := registry.Errorf(registry.ErrInvalid, "consul: instance %s has no TTL (register it with --ttl to use heartbeats)", id)
	return b.onOwner(ctx, id, ownerOp{
		agent: func(ctx context.Context, ep *endpoint) error {
			_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
				return ep.api.Agent().UpdateTTLOpts(ttlCheckID(id), "", api.HealthPassing, agentOptions(ctx))
			}})
			switch {
			case err == nil:
				return nil
			case errors.Is(err, registry.ErrNotFound):
				// No such check here; the instance may still be here, without a TTL.
				_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
					_, _, err := ep.api.Agent().Service(id, agentOptions(ctx))
					return err
				}})
				if err != nil {
					return err
				}
				return noTTL
			case strings.Contains(err.Error(), "does not have associated TTL"):
				// service:<id> exists but is another kind of check (a registration made elsewhere).
				return noTTL
			}
			return err
		},
		catalog: func(context.Context, string) error { return noTTL },
	})
}

// ownerOp is an operation on the agent that holds an instance.
type ownerOp struct {
	// agent acts on ep; an error wrapping ErrNotFound means ep does not hold the instance.
	agent func(ctx context.Context, ep *endpoint) error
	// catalog acts on an instance that is in the catalog on node but held by no agent.
	catalog func(ctx context.Context, node string) error
}

// onOwner runs op on the agent holding instance id. It tries the agent that took the
// registration in this process, then every configured address (current first), then looks
// the instance up in the catalog and asks the agent of its node, at the node's address and the
// port of the current address (agents usually share one HTTP port).
func (b *Backend) onOwner(ctx context.Context, id string, oo ownerOp) error {
	unreachable := map[string]error{}
	absent := map[string]bool{}
	// try reports whether the search is over, and with which result. node names ep's node
	// when the catalog told it.
	try := func(ep *endpoint, node string) (bool, error) {
		key := ep.base.String()
		if unreachable[key] != nil || absent[key] {
			return false, nil //nolint:nilerr // this agent failed; the next one is tried
		}
		err := oo.agent(ctx, ep)
		switch {
		case err == nil:
			b.owners.Store(id, ep)
			return true, nil
		case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
			// The agent took the connection and used up the time (a frozen or overloaded
			// agent): what remains is too little to search on.
			return true, newError(fmt.Sprintf("consul: instance %s: the agent at %s%s did not answer in time", id, ep.name, nodeOf(ep, node)),
				registry.ErrUnavailable, context.DeadlineExceeded)
		case ctx.Err() != nil:
			return true, err
		case errors.Is(err, registry.ErrNotFound):
			absent[key] = true
			return false, nil
		case errors.Is(err, registry.ErrUnavailable):
			unreachable[key] = err
			return false, nil
		}
		return true, err
	}

	var cands []*endpoint
	if v, ok := b.owners.Load(id); ok {
		cands = append(cands, v.(*endpoint))
	}
	for _, ep := range append(cands, b.c.order(nil)...) {
		if done, err := try(ep, ""); done {
			return err
		}
	}

	node, addr, err := b.findNode(ctx, id)
	if err != nil {
		return err
	}
	if node == "" {
		return registry.Errorf(registry.ErrNotFound, "consul: no instance with ID %q", id)
	}
	owner := b.c.endpointFor(addr, cmp.Or(b.c.current().base.Port(), "8500"))
	if owner == nil {
		return newError(fmt.Sprintf("consul: instance %s is held by the agent of node %s (address %s), whose HTTP API sdctl cannot find; add it to consul.address", id, node, addr), registry.ErrUnavailable)
	}
	if done, err := try(owner, node); done {
		return err
	}
	if err := unreachable[owner.base.String()]; err != nil {
		return newError(fmt.Sprintf("consul: instance %s is held by the agent of node %s, which cannot be reached: %v", id, node, err), registry.ErrUnavailable)
	}
	// The agent at the node's address does not hold it. If that agent is the node's own, no
	// agent holds the instance: it lives in the catalog only.
	if name, err := b.c.nodeName(ctx, owner); err == nil && name == node {
		return oo.catalog(ctx, node)
	}
	msg := fmt.Sprintf("consul: instance %s is held by the agent of node %s (address %s), whose HTTP API sdctl cannot find; add it to consul.address", id, node, addr)
	for key, e := range unreachable {
		msg += fmt.Sprintf("; %s: %v", strings.TrimPrefix(strings.TrimPrefix(key, "http://"), "https://"), strings.TrimPrefix(e.Error(), "consul "))
	}
	return newError(msg, registry.ErrUnavailable)
}

// nodeOf names ep's node, when known, for messages: " (node NAME)". fromCatalog is the node
// the catalog places the instance on, used when ep has not said its own name.
func nodeOf(ep *endpoint, fromCatalog string) string {
	ep.nodeMu.Lock()
	defer ep.nodeMu.Unlock()
	node := cmp.Or(ep.node, fromCatalog)
	if node == "" {
		return ""
	}
	return " (node " + node + ")"
}

// findNode searches the catalog for the node holding service instance id: the node's name and
// address, or "" when no node has it. It reads the leader's view, since a server's own copy
// may not have a registration made a moment ago through another server; without a leader it
// settles for a server's copy (not after an answer that was not Consul's).
func (b *Backend) findNode(ctx context.Context, id string) (node, addr string, err error) {
	node, addr, err = b.findNodeIn(ctx, id, true)
	if errors.Is(err, registry.ErrUnavailable) && !errors.Is(err, errAnswer) && ctx.Err() == nil && b.c.stale {
		return b.findNodeIn(ctx, id, false)
	}
	return node, addr, err
}

func (b *Backend) findNodeIn(ctx context.Context, id string, consistent bool) (node, addr string, err error) {
	var nodes []*api.Node
	_, err = b.c.do(ctx, op{run: func(ctx context.Context, ep *endpoint) error {
		var err error
		nodes, _, err = ep.api.Catalog().Nodes(b.c.queryOptions(ctx, consistent, 0, 0))
		return err
	}})
	if err != nil {
		return "", "", err
	}
	nodes = slices.DeleteFunc(nodes, func(n *api.Node) bool { return n == nil })
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = parallel(ctx, len(nodes), 8, func(ctx context.Context, i int) error {
		var n *api.CatalogNode
		_, err := b.c.do(ctx, op{run: func(ctx context.Context, ep *endpoint) error {
			var err error
			n, _, err = ep.api.Catalog().Node(nodes[i].Node, b.c.queryOptions(ctx, consistent, 0, 0))
			return err
		}})
		if errors.Is(err, registry.ErrNotFound) || (err == nil && n == nil) {
			return nil // the node left meanwhile (Consul answers null, or 404)
		}
		if err != nil {
			return err
		}
		if _, ok := n.Services[id]; ok {
			mu.Lock()
			node, addr = nodes[i].Node, nodes[i].Address
			mu.Unlock()
			cancel()
		}
		return nil
	})
	if node != "" {
		return node, addr, nil
	}
	return "", "", err
}

// parallel runs fn(ctx, i) for i in [0, n), at most limit at a time, and returns the first
// error. The context passed to fn is cancelled once one fails.
func parallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, limit)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// Cancelled by the caller (or by a finder that is done): report the caller's reason.
		return context.Cause(ctx)
	}
	return first
}
