package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// Member roles and health values reported by ClusterStatus.
const (
	roleLeader   = "leader"
	roleFollower = "follower"
	roleNonVoter = "non-voter"
	// roleServer is a server the gossip pool knows but the raft configuration does not (one
	// that left, or one that could not be matched when peers came from /v1/status/peers).
	roleServer = "server"

	healthUnhealthy = "unhealthy"
	healthUnknown   = "unknown"
)

// serfStatuses names serf's member states, by their number in /v1/agent/members.
var serfStatuses = []string{"none", "alive", "leaving", "left", "failed"}

type raftServer = api.RaftServer

type serfMember struct {
	Name   string
	Addr   string
	Tags   map[string]string
	Status int
}

type autopilotServer = api.ServerHealth

// ClusterStatus describes the servers of the datacenter: the leader (/v1/status/leader), the
// raft configuration (names, voters; /v1/status/peers when the token lacks operator:read),
// each server's gossip state and version (/v1/agent/members) and autopilot's health verdict
// when the token may read it. Parts that cannot be read are explained in Notes. Leader is
// empty when the cluster has none.
func (b *Backend) ClusterStatus(ctx context.Context) (registry.ClusterStatus, error) {
	if err := b.begin(ctx); err != nil {
		return registry.ClusterStatus{}, err
	}
	st := registry.ClusterStatus{Backend: Name}

	var leaderAddr string
	readLeader := func(ctx context.Context, ep *endpoint) error {
		var err error
		leaderAddr, err = ep.api.Status().LeaderWithQueryOptions(b.c.queryOptions(ctx, false, 0, 0))
		return err
	}
	ep, err := b.c.do(ctx, op{run: readLeader})
	if err != nil {
		return st, err
	}
	// Later reads go where the leader question was answered, so they describe one view.
	deposed := ""
	if leaderAddr != "" {
		named := leaderAddr
		if deposed, err = b.confirmLeader(ctx, ep); err != nil {
			return st, err
		}
		if deposed == "" {
			// The confirming read went to whichever server leads now: when an election ended
			// in between, the server named before is not the one that answered. Ask again.
			if _, err := b.c.do(ctx, op{pin: ep, run: readLeader}); err != nil {
				return st, err
			}
			if leaderAddr != named && leaderAddr != "" {
				if deposed, err = b.confirmLeader(ctx, ep); err != nil {
					return st, err
				}
			}
		}
		if deposed != "" {
			deposed, leaderAddr = leaderAddr+" ("+deposed+")", ""
		}
	}

	servers, err := b.raftServers(ctx, ep, leaderAddr == "" || deposed != "", &st)
	if err != nil {
		return st, err
	}
	members, err := b.serfServers(ctx, ep, &st)
	if err != nil {
		return st, err
	}
	health := b.autopilot(ctx, ep, leaderAddr == "" || deposed != "", &st)

	var dc string
	byName := map[string]serfMember{}
	byRaftAddr := map[string]serfMember{}
	for _, m := range members {
		byName[m.Name] = m
		if port := m.Tags["port"]; port != "" {
			byRaftAddr[net.JoinHostPort(m.Addr, port)] = m
		}
		dc = cmp.Or(dc, m.Tags["dc"])
	}

	seen := map[string]bool{}
	for _, s := range servers {
		m, ok := byName[s.Node]
		if !ok {
			m, ok = byRaftAddr[s.Address]
		}
		name := cmp.Or(s.Node, m.Name, s.Address)
		seen[m.Name] = ok
		mem := registry.Member{
			Name:    name,
			Address: s.Address,
			Role:    roleFollower,
			// raft's own flag is this server's view, stale while the leader is gone.
			Leader:  deposed == "" && (s.Leader || (leaderAddr != "" && s.Address == leaderAddr)),
			Health:  healthUnknown,
			Details: map[string]string{},
		}
		switch {
		case mem.Leader:
			mem.Role = roleLeader
			st.Leader = name
		case !s.Voter && s.ID != "":
			mem.Role = roleNonVoter
		}
		if s.ID != "" {
			mem.Details["id"] = s.ID
			mem.Details["voter"] = strconv.FormatBool(s.Voter)
			mem.Details["raft-protocol"] = s.ProtocolVersion
		}
		if ok {
			describeSerf(&mem, m)
		}
		if h, ok := health[name]; ok {
			describeAutopilot(&mem, h)
		}
		st.Members = append(st.Members, mem)
	}
	// Servers in the gossip pool but not in raft: left, or not yet joined.
	for _, m := range members {
		if seen[m.Name] {
			continue
		}
		mem := registry.Member{Name: m.Name, Address: raftAddr(m), Role: roleServer, Health: healthUnknown, Details: map[string]string{}}
		describeSerf(&mem, m)
		st.Members = append(st.Members, mem)
	}
	if st.Leader == "" && leaderAddr != "" {
		// A leader raft could not name: show its address.
		st.Leader = leaderAddr
	}
	for i := range st.Members {
		if dc != "" {
			st.Members[i].Details["datacenter"] = dc
		}
	}
	switch {
	case deposed != "":
		st.Notes = append(st.Notes, fmt.Sprintf("consul %s: the cluster has no leader: the servers still name %s, which does not answer; an election is running", ep.name, deposed))
	case leaderAddr == "":
		st.Notes = append(st.Notes, fmt.Sprintf("consul %s: the cluster has no leader (an election is running, too few servers are up for a quorum, or the servers wait to bootstrap)", ep.name))
	}
	return st, nil
}

// confirmLeader checks that the leader ep names answers: right after the leader dies, the
// other servers name it until they notice, and an election follows. A default-consistency
// read is forwarded to the leader, so it fails while the named leader is gone. It returns
// why the leader does not answer, or "" when it does. A token that Consul does not know is an
// error (exit code 5), as it is for every other command. The read lists no node (the filter
// matches none), so its size does not grow with the cluster.
func (b *Backend) confirmLeader(ctx context.Context, ep *endpoint) (string, error) {
	_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		// Bounded by attempt-timeout: a frozen leader is an election about to start.
		ctx, cancel := context.WithTimeout(ctx, b.c.attempt)
		defer cancel()
		q := b.c.queryOptions(ctx, true, 0, 0)
		q.Filter = `Node == ""`
		_, _, err := ep.api.Catalog().Nodes(q)
		return err
	}})
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, registry.ErrPermissionDenied) && unknownToken(err.Error()):
		return "", err
	case errors.Is(err, registry.ErrPermissionDenied):
		return "", nil // it answered: a leader decided
	case ctx.Err() != nil:
		return "", err
	case errors.Is(err, registry.ErrUnavailable):
		return strings.TrimPrefix(err.Error(), "consul "+ep.name+": "), nil
	}
	return "", err
}

// raftServers reads the raft configuration, falling back to the bare peer addresses when the
// token lacks operator:read, or when the cluster has no leader (noLeader) and the server
// cannot tell its configuration without one: a server that has never had a leader (one
// waiting for bootstrap_expect servers) holds the read for Consul's rpc_hold_timeout (7s) and
// answers "No cluster leader", so without a leader the read gets attempt-timeout at most.
func (b *Backend) raftServers(ctx context.Context, ep *endpoint, noLeader bool, st *registry.ClusterStatus) ([]raftServer, error) {
	var cfg *api.RaftConfiguration
	err := b.operatorRead(ctx, ep, noLeader, func(o *api.Operator, q *api.QueryOptions) (err error) {
		cfg, err = o.RaftGetConfiguration(q)
		return err
	})
	if err != nil && noLeader && errors.Is(err, registry.ErrUnavailable) && ctx.Err() == nil {
		st.Notes = append(st.Notes, "without a leader the raft configuration cannot be read ("+
			strings.TrimPrefix(err.Error(), "consul "+ep.name+": ")+"), so raft peers come from /v1/status/peers")
		return b.raftPeers(ctx, ep)
	}
	if err == nil {
		if cfg == nil {
			return nil, nil
		}
		var out []raftServer
		for _, s := range cfg.Servers {
			if s != nil {
				out = append(out, *s)
			}
		}
		return out, nil
	}
	if !errors.Is(err, registry.ErrPermissionDenied) || unknownToken(err.Error()) {
		return nil, err
	}
	st.Notes = append(st.Notes, "the ACL token lacks operator:read, so raft peers come from /v1/status/peers: "+
		"names are matched by address and voter flags are unknown")
	return b.raftPeers(ctx, ep)
}

// operatorRead runs read, an operator endpoint's read that needs a leader, on ep. When there is
// no leader (noLeader) it is bounded by attempt-timeout, since Consul then holds it for its
// rpc_hold_timeout before failing.
func (b *Backend) operatorRead(ctx context.Context, ep *endpoint, noLeader bool, read func(o *api.Operator, q *api.QueryOptions) error) error {
	_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		if noLeader {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, b.c.attempt)
			defer cancel()
		}
		return read(ep.api.Operator(), b.c.queryOptions(ctx, false, 0, 0))
	}})
	return err
}

// raftPeers lists the raft peers' addresses (/v1/status/peers), as voters.
func (b *Backend) raftPeers(ctx context.Context, ep *endpoint) ([]raftServer, error) {
	var peers []string
	_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		var err error
		peers, err = ep.api.Status().PeersWithQueryOptions(b.c.queryOptions(ctx, false, 0, 0))
		return err
	}})
	if err != nil {
		return nil, err
	}
	out := make([]raftServer, len(peers))
	for i, p := range peers {
		out[i] = raftServer{Address: p, Voter: true}
	}
	return out, nil
}

// serfServers reads the gossip pool's servers. Reading it needs node:read; without it Consul
// answers with fewer members, or none.
func (b *Backend) serfServers(ctx context.Context, ep *endpoint, st *registry.ClusterStatus) ([]serfMember, error) {
	var all []serfMember
	_, err := b.c.do(ctx, op{pin: ep, run: func(ctx context.Context, ep *endpoint) error {
		// Agent().Members takes no context; Raw's Query does.
		_, err := ep.api.Raw().Query("/v1/agent/members", &all, agentOptions(ctx))
		return err
	}})
	if errors.Is(err, registry.ErrPermissionDenied) && !unknownToken(err.Error()) {
		st.Notes = append(st.Notes, "the ACL token lacks node:read, so gossip status and versions are unknown")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []serfMember
	for _, m := range all {
		if m.Tags["role"] == "consul" {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		st.Notes = append(st.Notes, "the gossip pool shows no servers (the ACL token may lack node:read), so their status and versions are unknown")
	}
	slices.SortFunc(out, func(a, b serfMember) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// autopilot reads autopilot's health verdict per server name. Consul answers 429 with a valid
// body when some server is unhealthy; without operator:read, or without a leader (autopilot
// runs on the leader), it adds a note and returns nothing.
func (b *Backend) autopilot(ctx context.Context, ep *endpoint, noLeader bool, st *registry.ClusterStatus) map[string]autopilotServer {
	var reply *api.OperatorHealthReply
	err := b.operatorRead(ctx, ep, noLeader, func(o *api.Operator, q *api.QueryOptions) (err error) {
		reply, err = o.AutopilotServerHealth(q)
		return err
	})
	if err != nil {
		if errors.Is(err, registry.ErrPermissionDenied) {
			st.Notes = append(st.Notes, "the ACL token lacks operator:read, so autopilot health is unknown")
		} else {
			st.Notes = append(st.Notes, "autopilot health is unknown: "+err.Error())
		}
		return nil
	}
	if reply == nil {
		return nil
	}
	out := map[string]autopilotServer{}
	for _, s := range reply.Servers {
		out[s.Name] = s
	}
	return out
}

// describeSerf sets health from the gossip state and the version from the build tag
// ("1.14.11:abcd1234").
func describeSerf(mem *registry.Member, m serfMember) {
	status := healthUnknown
	if m.Status >= 0 && m.Status < len(serfStatuses) {
		status = serfStatuses[m.Status]
	}
	mem.Health = status
	mem.Details["serf"] = status
	if build := m.Tags["build"]; build != "" {
		mem.Version, _, _ = strings.Cut(build, ":")
	}
}

// describeAutopilot marks a live server that autopilot finds unhealthy (lagging, not in
// contact with the leader).
func describeAutopilot(mem *registry.Member, s autopilotServer) {
	mem.Details["autopilot"] = map[bool]string{true: "healthy", false: healthUnhealthy}[s.Healthy]
	if s.LastContact != nil {
		mem.Details["last-contact"] = s.LastContact.String()
	}
	if !s.Healthy && (mem.Health == "alive" || mem.Health == healthUnknown) {
		mem.Health = healthUnhealthy
	}
}

// raftAddr is a server member's raft address, its gossip address with the server port tag.
func raftAddr(m serfMember) string {
	if port := m.Tags["port"]; port != "" {
		return net.JoinHostPort(m.Addr, port)
	}
	return m.Addr
}
