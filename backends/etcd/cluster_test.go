package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

// TestLeaderKilled kills the leader of a 3-member cluster with SIGKILL while 200 resolves and
// 50 registrations run, as `sdctl resolve` processes and a `sdctl watch` would. Every resolve
// opens its own connection, like a new sdctl process. Reads must all succeed (the client fails
// over and the backend retries through the election); a registration may fail only with an
// error, after which the test retries it like a caller would, and every acknowledged
// registration must exist afterwards.
func TestLeaderKilled(t *testing.T) {
	t.Parallel()
	ms := etcdtest.StartCluster(t, 3)
	opts := Options{Prefix: randomPrefix(t), DialTimeout: 5 * time.Second}
	var writerLog testutil.SyncBuffer
	writer := open(t, opts, &writerLog, ms...)
	ctx := ctxFor(t, 2*time.Minute)

	// The CLI's default per-call timeout.
	const callTimeout = 10 * time.Second
	var base []string
	for i := range 5 {
		inst := registry.Instance{ID: fmt.Sprintf("web-%d", i), Name: "web", Address: "10.0.0.1", Port: 3000 + i}
		if err := writer.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
		base = append(base, inst.ID)
	}

	// A watch of the service being registered runs through the failover: it must end with
	// every registration, its indexes only growing, never repeating a set.
	watch := record(t, writer, registry.WatchRequest{Name: "api"})

	const reads, writes = 200, 50
	var (
		readFailures  []string
		writeFailures []string
		acked         []string
		slowestRead   time.Duration
		slowestWrite  time.Duration
		readsDone     = make(chan struct{})
		readProgress  = make(chan int, reads)
		writeProgress = make(chan int, writes)
		wg            sync.WaitGroup
	)
	wg.Go(func() {
		defer close(readsDone)
		for i := range reads {
			start := time.Now()
			got, err := resolveOnce(ctx, opts, ms, callTimeout)
			slowestRead = max(slowestRead, time.Since(start))
			switch {
			case err != nil:
				readFailures = append(readFailures, fmt.Sprintf("resolve %d after %v: %v", i, time.Since(start).Round(time.Millisecond), err))
			case !slices.Equal(ids(got), base):
				readFailures = append(readFailures, fmt.Sprintf("resolve %d: instances %v, want %v", i, ids(got), base))
			}
			readProgress <- i
			time.Sleep(10 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for i := range writes {
			inst := registry.Instance{ID: fmt.Sprintf("api-%02d", i), Name: "api", Address: "10.0.1.1", Port: 4000 + i}
			// A caller that gets an error registers again; three attempts per instance.
			for attempt := 1; attempt <= 3; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				start := time.Now()
				err := writer.Register(cctx, inst)
				cancel()
				slowestWrite = max(slowestWrite, time.Since(start))
				if err == nil {
					acked = append(acked, inst.ID)
					break
				}
				writeFailures = append(writeFailures, fmt.Sprintf("register %s (attempt %d) after %v: %v", inst.ID, attempt, time.Since(start).Round(time.Millisecond), err))
			}
			writeProgress <- i
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Kill the leader once both loops are under way, so calls are in flight during the
	// election.
	waitFor(t, readProgress, 40)
	waitFor(t, writeProgress, 10)
	leader := etcdtest.Leader(t, ms...)
	killedAt := time.Now()
	leader.Kill()
	t.Logf("killed leader %s", leader.Name)
	newLeader := etcdtest.Leader(t, ms...)
	t.Logf("new leader %s elected %v after the kill", newLeader.Name, time.Since(killedAt).Round(time.Millisecond))
	wg.Wait()

	for _, f := range readFailures {
		t.Log(f)
	}
	for _, f := range writeFailures {
		t.Log(f)
	}
	t.Logf("failover: %d/%d resolves failed (slowest %v); %d registration attempts failed, %d/%d registrations acknowledged (slowest %v)",
		len(readFailures), reads, slowestRead.Round(time.Millisecond), len(writeFailures), len(acked), writes, slowestWrite.Round(time.Millisecond))
	t.Logf("transient errors retried inside the writer's Register calls: %d", strings.Count(writerLog.String(), "retrying after a transient etcd error"))
	if len(readFailures) > 0 {
		t.Errorf("%d of %d resolves failed during the leader's loss, want 0", len(readFailures), reads)
	}
	if len(acked) != writes {
		t.Errorf("%d of %d registrations failed three times in a row", writes-len(acked), writes)
	}

	// Nothing acknowledged is lost, as seen through a fresh connection to the survivors.
	var alive []*etcdtest.Member
	for _, m := range ms {
		if m.Running() {
			alive = append(alive, m)
		}
	}
	check := open(t, Options{Prefix: opts.Prefix}, nil, alive...)
	got, err := check.Instances(ctx, registry.Query{Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	have := ids(got)
	for _, id := range acked {
		if !slices.Contains(have, id) {
			t.Errorf("acknowledged registration %s is missing after the failover", id)
		}
	}

	watch.until(t, 0, have...)

	// The killed member comes back and catches up.
	leader.Restart(t)
	st, err := check.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader == "" || len(st.Members) != 3 {
		t.Errorf("cluster status after the restart: %+v", st)
	}
}

// resolveOnce is one `sdctl resolve`: connect, read, close.
func resolveOnce(ctx context.Context, opts Options, ms []*etcdtest.Member, timeout time.Duration) ([]registry.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, m := range ms {
		opts.Endpoints = append(opts.Endpoints, m.ClientURL)
	}
	b, err := Open(ctx, opts, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Instances(ctx, registry.Query{Name: "web", HealthyOnly: true})
}

func waitFor(t *testing.T, progress <-chan int, n int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case i := <-progress:
			if i+1 >= n {
				return
			}
		case <-timeout:
			t.Fatalf("the load did not reach %d calls within a minute", n)
		}
	}
}

func ids(insts []registry.Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.ID
	}
	return out
}
