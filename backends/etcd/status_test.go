package etcd

import (
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

// TestClusterStatus follows a 3-member cluster as it loses one member, then its quorum.
func TestClusterStatus(t *testing.T) {
	t.Parallel()
	ms := etcdtest.StartCluster(t, 3)
	b := open(t, Options{DialTimeout: time.Second}, nil, ms...)
	ctx := ctxFor(t, 2*time.Minute)

	st, err := b.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := etcdtest.Leader(t, ms...)
	if st.Backend != Name || st.Leader != leader.Name || len(st.Members) != 3 {
		t.Fatalf("status = %+v, want leader %s and 3 members", st, leader.Name)
	}
	for _, m := range st.Members {
		wantRole := roleFollower
		if m.Name == leader.Name {
			wantRole = roleLeader
		}
		if m.Role != wantRole || m.Leader != (wantRole == roleLeader) || m.Health != healthHealthy || m.Version != "3.6.13" {
			t.Errorf("member %+v: want role %s, healthy, version 3.6.13", m, wantRole)
		}
		for _, k := range []string{"id", "raft-term", "raft-index", "raft-applied-index", "db-size", "db-size-in-use", "peer-urls", "leader-id"} {
			if m.Details[k] == "" {
				t.Errorf("member %s: no %s in details %v", m.Name, k, m.Details)
			}
		}
		if !strings.HasPrefix(m.Address, "http://127.0.0.1:") {
			t.Errorf("member %s: address %q", m.Name, m.Address)
		}
	}

	// One follower down: still a leader; the follower is unreachable.
	var follower *etcdtest.Member
	for _, m := range ms {
		if m != leader {
			follower = m
			break
		}
	}
	follower.Kill()
	st, err = b.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != leader.Name {
		t.Errorf("leader %q after a follower's loss, want %s", st.Leader, leader.Name)
	}
	if m := find(st, follower.Name); m.Health != healthUnreachable || m.Role != roleUnknown || m.Details["error"] == "" {
		t.Errorf("killed follower shown as %+v, want unreachable with an error", m)
	}
	if !strings.Contains(strings.Join(st.Notes, "\n"), follower.Name+" ") {
		t.Errorf("notes %q do not mention %s", st.Notes, follower.Name)
	}

	// The leader down too: no quorum. Within a few election timeouts the survivor stops
	// following the dead leader, and the cluster has none.
	leader.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = b.ClusterStatus(ctx)
		if err != nil {
			t.Fatalf("ClusterStatus without quorum: %v (it must still answer)", err)
		}
		if st.Leader == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader still %q 20s after losing quorum", st.Leader)
		}
		time.Sleep(200 * time.Millisecond)
	}
	unreachable := 0
	for _, m := range st.Members {
		if m.Health == healthUnreachable {
			unreachable++
		}
		if m.Leader {
			t.Errorf("member %s still shown as leader", m.Name)
		}
	}
	if unreachable != 2 {
		t.Errorf("%d unreachable members, want 2: %+v", unreachable, st.Members)
	}
	t.Logf("without quorum: %+v", st)
}

func find(st registry.ClusterStatus, name string) registry.Member {
	for _, m := range st.Members {
		if m.Name == name {
			return m
		}
	}
	return registry.Member{}
}
