package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/registry"
)

// Member health values reported by ClusterStatus.
const (
	healthHealthy     = "healthy"
	healthAlarm       = "alarm"
	healthUnreachable = "unreachable"
	healthUnstarted   = "unstarted"
)

// Member roles reported by ClusterStatus.
const (
	roleLeader   = "leader"
	roleFollower = "follower"
	roleLearner  = "learner"
	roleUnknown  = "unknown"
)

// ClusterStatus lists the cluster's members (a serializable read, so it answers without a
// leader) and asks each member for its status: leader or follower, raft term and index,
// database size, version and alarms. Members that do not answer within the dial timeout are
// shown as unreachable. Leader is the name of the member that reports itself leader, empty
// when none does.
func (b *Backend) ClusterStatus(ctx context.Context) (registry.ClusterStatus, error) {
	if err := b.begin(ctx); err != nil {
		return registry.ClusterStatus{}, err
	}
	var list *clientv3.MemberListResponse
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		list, err = b.cli.MemberList(ctx, clientv3.WithSerializable())
		return err
	})
	if err != nil {
		return registry.ClusterStatus{}, b.wrap(err, "")
	}

	statuses := make([]*clientv3.StatusResponse, len(list.Members))
	errs := make([]error, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		if len(m.ClientURLs) == 0 {
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
			defer cancel()
			statuses[i], errs[i] = b.cli.Status(sctx, m.ClientURLs[0])
		})
	}
	wg.Wait()

	st := registry.ClusterStatus{Backend: Name}
	// The leader as the members see it: the one named by the status of the highest term.
	var leaderID, term uint64
	for _, s := range statuses {
		if s != nil && s.Leader != 0 && s.RaftTerm >= term {
			leaderID, term = s.Leader, s.RaftTerm
		}
	}
	for i, m := range list.Members {
		mem := member(m, statuses[i])
		switch {
		case len(m.ClientURLs) == 0:
			st.Notes = append(st.Notes, fmt.Sprintf("member %x has not started yet (no client URL)", m.ID))
		case statuses[i] == nil:
			reason := b.memberError(errs[i])
			mem.Details["error"] = reason
			st.Notes = append(st.Notes, fmt.Sprintf("member %s (%s) does not answer: %s", displayName(m), m.ClientURLs[0], reason))
		case statuses[i].Leader == 0:
			st.Notes = append(st.Notes, fmt.Sprintf("member %s knows no leader", displayName(m)))
		}
		if m.ID == leaderID {
			if mem.Leader {
				st.Leader = displayName(m)
			} else {
				st.Notes = append(st.Notes, fmt.Sprintf("members name %s leader, but it does not answer", displayName(m)))
			}
		}
		st.Members = append(st.Members, mem)
	}
	return st, nil
}

// memberError says briefly why a member did not answer its status request.
func (b *Backend) memberError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "desc = "):
		return connectionCause(err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", b.opts.DialTimeout)
	}
	return strings.TrimPrefix(b.wrap(err, "").Error(), b.where+": ")
}

// member describes one member from its entry in the member list and its status (nil when it
// did not answer).
func member(m *etcdserverpb.Member, s *clientv3.StatusResponse) registry.Member {
	mem := registry.Member{
		Name:   displayName(m),
		Role:   roleUnknown,
		Health: healthUnreachable,
		Details: map[string]string{
			"id":        fmt.Sprintf("%x", m.ID),
			"peer-urls": strings.Join(m.PeerURLs, ","),
		},
	}
	if len(m.ClientURLs) > 0 {
		mem.Address = m.ClientURLs[0]
		mem.Details["client-urls"] = strings.Join(m.ClientURLs, ",")
	} else {
		mem.Health = healthUnstarted
		if len(m.PeerURLs) > 0 {
			mem.Address = m.PeerURLs[0]
		}
	}
	if m.IsLearner {
		mem.Role = roleLearner
		mem.Details["learner"] = "true"
	}
	if s == nil {
		return mem
	}
	mem.Version = s.Version
	mem.Health = healthHealthy
	switch {
	case s.IsLearner:
		mem.Role = roleLearner
	case s.Leader != 0 && s.Leader == s.Header.GetMemberId():
		mem.Role, mem.Leader = roleLeader, true
	default:
		mem.Role = roleFollower
	}
	d := mem.Details
	d["raft-term"] = strconv.FormatUint(s.RaftTerm, 10)
	d["raft-index"] = strconv.FormatUint(s.RaftIndex, 10)
	d["raft-applied-index"] = strconv.FormatUint(s.RaftAppliedIndex, 10)
	d["db-size"] = strconv.FormatInt(s.DbSize, 10)
	d["db-size-in-use"] = strconv.FormatInt(s.DbSizeInUse, 10)
	if s.DbSizeQuota > 0 {
		d["db-size-quota"] = strconv.FormatInt(s.DbSizeQuota, 10)
	}
	if s.StorageVersion != "" {
		d["storage-version"] = s.StorageVersion
	}
	if s.Leader != 0 {
		d["leader-id"] = fmt.Sprintf("%x", s.Leader)
	}
	if len(s.Errors) > 0 {
		mem.Health = healthAlarm
		d["alarms"] = strings.Join(s.Errors, "; ")
	}
	return mem
}

// displayName is the member's name, or its ID while it has none (not started yet).
func displayName(m *etcdserverpb.Member) string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", m.ID)
}
