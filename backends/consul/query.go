package consul

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// consulService is the service Consul servers register for themselves. Services and Watch of
// all services leave it out (sdctl lists what was registered, not Consul's own plumbing);
// Instances and Watch still return it when asked for it by name.
const consulService = "consul"

// Instances reads /v1/health/service/<name>. With HealthyOnly (and not IncludeWarning) Consul
// filters with ?passing, which drops every instance with a check that is not passing, node
// checks included; otherwise health is computed here from the same checks.
func (b *Backend) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if err := registry.ValidateName(q.Name); err != nil {
		return nil, err
	}
	entries, _, err := b.health(ctx, q.Name, q.HealthyOnly && !q.IncludeWarning, 0)
	if err != nil {
		return nil, err
	}
	out := instances(entries, q)
	if q.Pick != nil {
		out = registry.PickFrom(out, *q.Pick)
	}
	return out, nil
}

// health reads the health entries of one service. index > 0 makes it a blocking query. With
// passing, Consul leaves out the entries with a check that is not passing (consul/api's call
// is the one that can ask for that); otherwise only the fields of serviceEntry are decoded.
func (b *Backend) health(ctx context.Context, name string, passing bool, index uint64) ([]*serviceEntry, uint64, error) {
	var entries []*serviceEntry
	ep, meta, err := b.read(ctx, index, func(ep *endpoint, q *api.QueryOptions) (meta *api.QueryMeta, err error) {
		if passing {
			var full []*api.ServiceEntry
			full, meta, err = ep.api.Health().Service(name, "", true, q)
			entries = leanEntries(full)
			return meta, err
		}
		entries = nil
		return ep.api.Raw().Query("/v1/health/service/"+name, &entries, q)
	})
	if err != nil {
		return nil, 0, err
	}
	if len(entries) == 0 {
		if err := b.hidden(ep, meta, "service "+name, "service:read and node:read"); err != nil {
			return nil, 0, err
		}
	}
	return entries, lastIndex(meta), nil
}

// read runs one read through the client (see client.do), a blocking query past index held up
// to the wait option when index > 0. It returns the endpoint that answered and the answer's
// metadata.
func (b *Backend) read(ctx context.Context, index uint64, get func(ep *endpoint, q *api.QueryOptions) (*api.QueryMeta, error)) (*endpoint, *api.QueryMeta, error) {
	var (
		meta *api.QueryMeta
		wait time.Duration
	)
	if index > 0 {
		wait = b.opts.Wait
	}
	ep, err := b.c.do(ctx, op{wait: wait, run: func(ctx context.Context, ep *endpoint) error {
		var err error
		meta, err = get(ep, b.c.queryOptions(ctx, false, index, wait))
		return err
	}})
	return ep, meta, err
}

// hidden checks an empty answer for ACL filtering: Consul answers reads the token may not see
// with an empty list, which would otherwise read as "nothing registered". With a token Consul
// says when it filtered, and that is a permission error. Without one it never says (so as not
// to reveal what exists), and an anonymous token may well be allowed to read; a warning is all
// that can be given then.
func (b *Backend) hidden(ep *endpoint, meta *api.QueryMeta, what, needs string) error {
	if meta == nil {
		return nil
	}
	if meta.ResultsFilteredByACLs {
		return registry.Errorf(registry.ErrPermissionDenied,
			"consul %s: the ACL token in use cannot read %s (it needs %s)", ep.name, what, needs)
	}
	if meta.DefaultACLPolicy == "deny" && b.c.token == "" {
		b.log.Warn("consul: no ACL token is set and ACLs deny by default, so results may be hidden; set consul.token or CONSUL_HTTP_TOKEN",
			"address", ep.name, "read", what)
	}
	return nil
}

// lastIndex is X-Consul-Index, at least 1 when present (Consul's rule for blocking
// clients), 0 when absent.
func lastIndex(meta *api.QueryMeta) uint64 {
	if meta == nil || meta.LastIndex == 0 {
		return 0
	}
	return meta.LastIndex
}

// Services lists the catalog's services with instance and passing counts, sorted by name.
// Counting needs each service's health entries; they are read a few services at a time.
func (b *Backend) Services(ctx context.Context) ([]registry.Service, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	names, _, err := b.serviceNames(ctx, 0)
	if err != nil {
		return nil, err
	}
	out := make([]registry.Service, len(names))
	err = parallel(ctx, len(names), 8, func(ctx context.Context, i int) error {
		entries, _, err := b.health(ctx, names[i], false, 0)
		if err != nil {
			return err
		}
		s := registry.Service{Name: names[i], Instances: len(entries)}
		for _, e := range entries {
			if aggregate(e.Checks) == registry.HealthPassing {
				s.Passing++
			}
			for _, t := range e.Service.Tags {
				if !slices.Contains(s.Tags, t) {
					s.Tags = append(s.Tags, t)
				}
			}
		}
		slices.Sort(s.Tags)
		out[i] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A service can lose its last instance between the two reads.
	out = slices.DeleteFunc(out, func(s registry.Service) bool { return s.Instances == 0 })
	return out, nil
}

// serviceNames lists the catalog's service names, sorted, without Consul's own. index > 0
// makes it a blocking query.
func (b *Backend) serviceNames(ctx context.Context, index uint64) ([]string, uint64, error) {
	var m map[string][]string
	ep, meta, err := b.read(ctx, index, func(ep *endpoint, q *api.QueryOptions) (meta *api.QueryMeta, err error) {
		m, meta, err = ep.api.Catalog().Services(q)
		return meta, err
	})
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, 0, len(m))
	for name := range m {
		if name != consulService {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		if err := b.hidden(ep, meta, "the catalog's services", "service:read"); err != nil {
			return nil, 0, err
		}
	}
	slices.Sort(names)
	return names, lastIndex(meta), nil
}

// allInstances reads every instance of every service but Consul's own, sorted by ID.
func (b *Backend) allInstances(ctx context.Context, names []string) ([]registry.Instance, error) {
	var mu sync.Mutex
	all := []registry.Instance{}
	err := parallel(ctx, len(names), 8, func(ctx context.Context, i int) error {
		entries, _, err := b.health(ctx, names[i], false, 0)
		if err != nil {
			return err
		}
		insts := instances(entries, registry.Query{})
		mu.Lock()
		all = append(all, insts...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b registry.Instance) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Name, b.Name))
	})
	return all, nil
}
