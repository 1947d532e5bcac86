package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
)

// The recovery measurement: a watcher without --resync, with n containers registered, talks
// to Consul through a counting proxy. The bench counts the requests it sends while nothing
// changes (the idle rate), then SIGKILLs the Consul agent, empties its data directory and
// starts it again on the same ports, and times from the agent being ready again (leader
// elected, own node in the catalog) until all n instances are listed again.

const (
	targetIdleRate  = 1.0             // requests per second to an idle registry
	targetRecovered = 5 * time.Second // agent back → all instances listed
	idleWindow      = 65 * time.Second
)

type recoveryResult struct {
	n           int
	idleWindow  time.Duration
	idleCount   int
	idleByPath  map[string]int
	killToReady time.Duration // SIGKILL → the new agent ready
	recovered   time.Duration // ready → all n listed
	reasons     []string      // the reconciles the watcher ran after the restart
	failure     string
}

func (r *recoveryResult) idleRate() float64 { return float64(r.idleCount) / r.idleWindow.Seconds() }

func (d *dockerPart) measureRecovery(ctx context.Context, ws *workspace, n int) (*recoveryResult, error) {
	r := &recoveryResult{n: n, idleWindow: idleWindow}
	proxy, err := harness.NewHTTPProxy("http://"+d.srv.addr, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if err := proxy.Serve(); err != nil {
		return nil, err
	}
	defer proxy.Close()
	w, err := d.startWatcherWith(ctx, ws, "recovery", 0, proxy.Addr)
	if err != nil {
		return nil, err
	}
	cs := make([]benchContainer, n)
	defer func() { d.finish(w, cs) }()
	err = forEach(ctx, n, dockerWorkers, func(i int) error {
		c, err := d.createContainer("recovery")
		if err != nil {
			return err
		}
		cs[i] = c
		return d.startContainer(c)
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.awaitListed(ctx, cs, time.Minute); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, w.log.tail(20))
	}

	// Idle: a moment for the last writes' watch answers, then a window longer than one
	// blocking query's hold (Consul's wait, 1 min by default).
	time.Sleep(2 * time.Second)
	proxy.Take()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(r.idleWindow):
	}
	r.idleByPath = proxy.Take()
	for _, k := range r.idleByPath {
		r.idleCount += k
	}
	progress("  idle: %d requests in %s (%.3f/s)", r.idleCount, r.idleWindow, r.idleRate())

	from := w.log.len()
	t0 := time.Now()
	// SIGKILL, its data directory emptied, started again on the same ports; back when ready.
	if err := d.srv.consul.RestartEmpty(ctx); err != nil {
		return nil, fmt.Errorf("restart consul empty: %w", err)
	}
	ready := time.Now()
	r.killToReady = ready.Sub(t0)
	at, err := d.awaitListed(ctx, cs, time.Minute)
	if err != nil {
		r.failure = err.Error()
		progress("  %v", err)
	} else {
		r.recovered = at.Sub(ready)
		progress("  consul back %s after SIGKILL; all %d listed %s later", secs(r.killToReady), n, secs(r.recovered))
	}
	for i := from; ; {
		l, next, err := w.log.find(i, func(l watcherLine) bool { return l.msg == "reconciled" })
		if err != nil {
			break
		}
		r.reasons = append(r.reasons, l.kv["reason"])
		i = next
	}
	return r, nil
}

// awaitListed polls Consul (directly, not through the proxy) every 100 ms until every one of
// cs is listed, and returns when the answer that showed it arrived.
func (d *dockerPart) awaitListed(ctx context.Context, cs []benchContainer, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := d.healthOnce(ctx, 0)
		k := 0
		if err == nil {
			for _, c := range cs {
				if v.ids[c.instanceID()] {
					k++
				}
			}
			if k == len(cs) {
				return v.at, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d containers listed in Consul after %s (last error: %v)", k, len(cs), limit, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *recoveryResult) targetRows() []dockerTarget {
	recovered := secs(r.recovered)
	if r.failure != "" {
		recovered = r.failure
	}
	return []dockerTarget{
		{"idle registry: requests per second the watcher sends", fmt.Sprintf("≤ %.0f/s", targetIdleRate),
			fmt.Sprintf("%.3f/s (%d in %s)", r.idleRate(), r.idleCount, r.idleWindow), r.idleRate() <= targetIdleRate},
		{fmt.Sprintf("Consul agent restarted empty, %d containers, no `--resync`: agent ready → all listed", r.n),
			fmt.Sprintf("≤ %d s", targetRecovered/time.Second), recovered, r.failure == "" && r.recovered <= targetRecovered},
	}
}

func (r *recoveryResult) write(w func(string, ...any)) {
	w("**Recovery.** A watcher without `--resync`, talking to Consul through a counting HTTP proxy in the bench, with %d containers registered. Idle: the requests it sent in %s while nothing changed, by path: %s. Then the bench SIGKILLs the Consul agent, empties its data directory and starts it again on the same ports: ready (leader elected, own node in the catalog) %s after the SIGKILL; all %d instances listed again %s after that (Consul polled every 100 ms). Reconciles the watcher logged from the restart on: %s. Registrator cannot recover without `-resync`; it was not run side by side here.\n\n",
		r.n, r.idleWindow, idlePaths(r.idleByPath), secs(r.killToReady), r.n, orFailure(secs(r.recovered), r.failure), strings.Join(r.reasons, ", "))
}

func idlePaths(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("`%s` ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func orFailure(s, failure string) string {
	if failure != "" {
		return failure
	}
	return s
}
