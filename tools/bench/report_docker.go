package main

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Targets of the Docker part.
const (
	targetWatchP50       = 50 * time.Millisecond  // start → listed and die → gone, p50
	targetWatchP99       = 250 * time.Millisecond // the same, p99
	targetWatchBurst     = 5 * time.Second        // last start event → all listed
	targetWatchReconcile = time.Second            // a resync reconcile with nothing changed
	targetWatchRSSKiB    = 40 * 1024              // peak RSS of the watcher plus its plugin
)

// dockerTarget is one row of the Docker part's target table.
type dockerTarget struct {
	measurement, target, measured string
	ok                            bool
}

// targetRows are the Docker part's targets with what was measured.
func (res *dockerResult) targetRows() []dockerTarget {
	if res == nil {
		return nil
	}
	var rows []dockerTarget
	if s := res.seq; s != nil {
		for _, c := range []struct {
			what string
			d    []time.Duration
		}{{"container start → listed in Consul", s.up.took}, {"container stop → gone from Consul", s.down.took}} {
			sum := summarize(c.d)
			of := fmt.Sprintf(" (%d of %d)", sum.n, s.n)
			rows = append(rows,
				dockerTarget{c.what + ", p50, one at a time", fmt.Sprintf("≤ %d ms", targetWatchP50/time.Millisecond), ms(sum.p50) + of, s.ok() && sum.p50 <= targetWatchP50},
				dockerTarget{c.what + ", p99, one at a time", fmt.Sprintf("≤ %d ms", targetWatchP99/time.Millisecond), ms(sum.p99) + of, s.ok() && sum.p99 <= targetWatchP99},
				dockerTarget{c.what + ", max, one at a time", "—", ms(sum.max), true},
			)
		}
	}
	if b := res.burst; b != nil {
		measured := dur(b.allVisible)
		if !b.ok() {
			measured = b.failure
		}
		rows = append(rows, dockerTarget{fmt.Sprintf("%d containers started at once: last `start` event → all %d listed", b.n, b.n),
			fmt.Sprintf("≤ %d s", targetWatchBurst/time.Second), measured, b.ok() && b.allVisible <= targetWatchBurst})
	}
	if r := res.rec; r != nil {
		rows = append(rows,
			dockerTarget{fmt.Sprintf("resync reconcile, %d containers running, nothing changed: duration", r.n),
				fmt.Sprintf("≤ %d s", targetWatchReconcile/time.Second), ms(r.duration()), r.line != "" && r.duration() <= targetWatchReconcile},
			dockerTarget{"… its registry writes (log, gauge, Consul)", "0",
				fmt.Sprintf("%d (log), %.0f (gauge), agent services %s, catalog index %s", r.writesLog, r.writesGauge, sameWord(r.agentSame()), indexChange(r)), r.ok()},
		)
		sumHWM := r.watcherMem.hwm + r.pluginMem.hwm
		rows = append(rows, dockerTarget{fmt.Sprintf("RSS of the watcher + its plugin, %d containers running (peak, VmHWM)", r.n),
			fmt.Sprintf("≤ %d MiB", targetWatchRSSKiB/1024),
			fmt.Sprintf("%s + %s = %s (VmRSS now: %s)", mib(r.watcherMem.hwm), mib(r.pluginMem.hwm), mib(sumHWM), mib(r.watcherMem.rss+r.pluginMem.rss)),
			r.rssErr == "" && sumHWM > 0 && sumHWM <= targetWatchRSSKiB})
	}
	if r := res.recov; r != nil {
		rows = append(rows, r.targetRows()...)
	}
	return rows
}

// exitCodes lists exit codes with their counts: "0 ×49, 137 ×1".
func exitCodes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(m)) {
		c := code
		if c == "" {
			c = "unknown"
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", c, m[code]))
	}
	return strings.Join(parts, ", ")
}

// dur formats a duration in milliseconds below a second, in seconds above.
func dur(d time.Duration) string {
	if d >= time.Second || d <= -time.Second {
		return secs(d)
	}
	return ms(d)
}

func sameWord(same bool) string {
	if same {
		return "unchanged"
	}
	return "**changed**"
}

func indexChange(r *reconcileResult) string {
	if r.before.catalogIndex == r.after.catalogIndex {
		return fmt.Sprintf("unchanged (%d)", r.before.catalogIndex)
	}
	return fmt.Sprintf("**%d → %d**", r.before.catalogIndex, r.after.catalogIndex)
}

// targets adds the Docker part's rows to the Targets table.
func (res *dockerResult) targets(w func(string, ...any)) {
	for _, t := range res.targetRows() {
		if t.target == "—" {
			continue
		}
		w("| `sdctl watch`: %s %s | %s | %s |\n", t.measurement, t.target, t.measured, passFail(t.ok))
	}
}

func (r *report) writeDocker(b *bytes.Buffer, num int) {
	res := r.docker
	if res == nil || res.srv == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### %d. sdctl watch (Docker → Consul)\n\n", num)
	w("Engine: %s, the one this machine runs (`DOCKER_HOST` or the local socket). Image: `%s:RUN` (%.1f MB), built by the bench before the part, FROM scratch with `examples/service-web/Dockerfile` and a static `CGO_ENABLED=0 go build -trimpath` of `examples/service-web`, in %s. ",
		res.engine, benchImageRepo, float64(res.imageSize)/1e6, res.imageBuild.Round(10*time.Millisecond))
	w("Consul: %s, an agent of its own for this part: %s; serving %s after it was started.\n\n", res.srv.version, res.srv.flags, res.srv.started.Round(10*time.Millisecond))
	w("Each measurement runs its own `%s` (the scratch copy of the binary, `CONSUL_HTTP_ADDR=ADDR`, its own scratch HOME), once its `/healthz` answers 200 and it has logged its first reconcile, and stops it with SIGTERM afterwards. Containers are made like `docker create -p 127.0.0.1::3000 -e SERVICE_3000_NAME=%s -l %s=RUN %s:RUN`: one instance each, ID `%s:NAME:3000`. Everything carrying the label (containers, image) is removed at the end of the part, also on an error or Ctrl-C.\n\n",
		res.watchArgs, benchService, benchLabel, benchImageRepo, benchNode)
	w("Times come from two sources on this machine's clock: the engine's event stream (filtered by the label; the `start` and `die` events with their nanosecond timestamps) and blocking queries on Consul's `/v1/health/service/%s?index=N&wait=%s`, one always waiting while a container starts or stops, so that an answer comes as soon as Consul has the change; its time is when the answer arrived.\n\n",
		benchService, healthWait)

	w("| Measurement | Target | Measured | Result |\n|---|---|---|:-:|\n")
	for _, t := range res.targetRows() {
		result := passFail(t.ok)
		if t.target == "—" {
			result = "—"
		}
		w("| %s | %s | %s | %s |\n", t.measurement, t.target, t.measured, result)
	}
	w("\n")

	if s := res.seq; s != nil {
		w("**One at a time.** %d containers, each created, then started; once it is listed, stopped (`docker stop`, SIGTERM: service-web exits 0); once it is gone, the next one, 100 ms later. The containers are removed after the last one. The watcher's `added` and `removed` lines (millisecond timestamps, taken as the millisecond plus 0.5 ms) split the time: an instance can be listed before its line is written, since Consul's agent updates the catalog before it answers the registration. The watcher inspects a started container before it registers it, and deregisters a stopped one straight from its `die` event; the bench sends an inspect as soon as it has the `die` event, to show how long the engine takes to answer one then, which is what waiting for an inspect would cost. p99 is the nearest rank: with fewer than 100 containers it is the largest.\n\n", s.n)
		writeLatencyTable(w, "Containers", []timedRow{
			{"`start` event → listed in Consul", s.up.took},
			{"… `start` event → the watcher's `added` line", s.up.toLine},
			{"… `added` line → listed", s.up.lineToAnswer},
			{"`die` event → gone from Consul", s.down.took},
			{"… `die` event → the watcher's `removed` line", s.down.toLine},
			{"… `removed` line → gone", s.down.lineToAnswer},
			{"for comparison: `die` event → the engine answers an inspect the bench sent on the event", s.dieInspect},
			{"for comparison: the engine's start call (`ContainerStart`)", s.startCall},
			{"for comparison: the engine's stop call (`ContainerStop`)", s.stopCall},
		})
		w("\nNot listed within %s: %d; not gone within %s: %d. Exit codes of the `die` events: %s.", dockerVisibleMax, s.up.missed, dockerVisibleMax, s.down.missed, exitCodes(s.exitCodes))
		if len(s.exitCodes) > 1 || s.exitCodes["0"] == 0 {
			w(" A code other than 0 is a container stopped before service-web had set up its SIGTERM handling (the stop comes as soon as the container is listed, a few milliseconds after its start): 2 when the Go runtime had started, which then exits with status 2 on SIGTERM; 137 when not even that, so that the SIGTERM was ignored, as PID 1 ignores a signal it has no handler for, and the engine killed the container %d s later. The gone time counts from the `die` event either way.", dockerStopSecs)
		}
		w("\n")
		for _, f := range s.failures {
			w("\nFailure: `%s`\n", f)
		}
		w("\n")
	}

	if bu := res.burst; bu != nil {
		w("**%d at once.** The %d containers are created first (%s), then started by %d goroutines at once; a blocking query waits for all of them. Then they are stopped the same way, and removed.\n\n",
			bu.n, bu.n, dur(bu.create), bu.workers)
		w("| Measured | Time |\n|---|--:|\n")
		w("| start calls, first call to last return | %s |\n", dur(bu.startCalls))
		w("| first to last `start` event | %s |\n", dur(bu.startSpread))
		if bu.ok() {
			w("| **last `start` event → all %d listed** | **%s** |\n", bu.n, dur(bu.allVisible))
			w("| first `start` event → all %d listed | %s |\n", bu.n, dur(bu.fromFirst))
		} else {
			w("| last `start` event → all %d listed | %s |\n", bu.n, bu.failure)
		}
		w("| last `start` event → the watcher's last `added` line | %s |\n", dur(bu.lastAdded))
		w("| stop calls, first call to last return | %s |\n", dur(bu.stopCalls))
		if bu.goneOK {
			w("| last `die` event → none listed | %s |\n", dur(bu.allGone))
		} else {
			w("| last `die` event → none listed | not within 2 minutes |\n")
		}
		w("\n")
	}

	if rc := res.rec; rc != nil {
		w("**Reconcile with %d containers running.** A new watcher; the containers are created and started in batches of %d, %d at a time, which took %s (%.0f containers/s); all %d were listed in Consul %s after the first create (checked every %s). The bench then reads the watcher's /metrics, Consul's `/v1/agent/services` and the `X-Consul-Index` of `/v1/catalog/services`, waits for the next periodic reconcile (`--resync %s`) that starts after that, and reads them again. %s after all were listed, the watcher logged `%s`.\n\n",
			rc.n, rc.batch, rc.workers, secs(rc.startTook), float64(rc.n)/rc.startTook.Seconds(), rc.n, secs(rc.visibleAfter), rc.poll, watchResync, secs(rc.waitedResync), rc.line)
		hist := ms(rc.histTook)
		if rc.histCount != 1 {
			hist = fmt.Sprintf("not usable: _count grew by %.0f", rc.histCount)
		}
		w("| Measured | Value |\n|---|---|\n")
		w("| duration: `sdctl_watch_reconcile_duration_seconds` _sum growth (_count +1) | %s |\n", hist)
		w("| duration: the log line's `took=` (rounded to the millisecond) | %s |\n", ms(rc.took))
		w("| containers in the reconcile (`containers=`) | %d |\n", rc.containers)
		w("| writes: `writes=` / `sdctl_watch_reconcile_writes` | %d / %.0f |\n", rc.writesLog, rc.writesGauge)
		w("| `sdctl_watch_registrations_total` + `deregistrations_total` growth | %.0f |\n", rc.regDelta)
		w("| `sdctl_watch_reconciles_total{reason=\"resync\"}` growth | %.0f |\n", rc.resyncDelta)
		w("| Consul `/v1/agent/services` (%d `%s` entries before, %d after) | %s |\n", rc.before.benchServices, benchService, rc.after.benchServices, sameWord(rc.agentSame()))
		w("| Consul catalog index (`/v1/catalog/services`) | %s |\n", indexChange(rc))
		w("\n")
		w("**Memory.** Read right after that reconcile, with the %d containers still running: `/proc/PID/status` of the watcher and of its child process, the backend plugin (the process whose parent is the watcher). VmHWM is each process's own peak; their sum (the target's figure) is an upper bound of the peak of the two together. VmRSS is split into anonymous pages (heap, stacks: each process's own) and file-backed ones (mostly the text of the sdctl binary, which both processes map: the same pages, counted in each); PSS, from `/proc/PID/smaps_rollup`, counts a shared page divided among the processes that map it, so the PSS sum is what the two occupy together now.\n\n", rc.n)
		w("| Process | Peak (VmHWM) | Now (VmRSS) | anonymous (RssAnon) | file-backed (RssFile) | PSS |\n|---|--:|--:|--:|--:|--:|\n")
		for _, row := range []struct {
			label string
			m     memInfo
		}{{"`sdctl watch`", rc.watcherMem}, {"its plugin", rc.pluginMem}} {
			w("| %s | %s | %s | %s | %s | %s |\n", row.label, mib(row.m.hwm), mib(row.m.rss), mib(row.m.anon), mib(row.m.file), mib(row.m.pss))
		}
		sum := rc.watcherMem
		sum.add(rc.pluginMem)
		w("| **sum** | **%s** | **%s** | %s | %s | **%s** |\n", mib(sum.hwm), mib(sum.rss), mib(sum.anon), mib(sum.file), mib(sum.pss))
		if rc.plugins != 1 || rc.rssErr != "" {
			w("\nChild processes of the watcher: %d. %s\n", rc.plugins, rc.rssErr)
		}
		w("\n")
	}

	if rc := res.recov; rc != nil {
		rc.write(w)
	}

	if len(res.cpu) > 0 {
		w("**Machine load.** Load average (1/5/15 min) %s at the start of this part, %s at its end. CPU use while each measurement ran, in percent of all %d CPUs (/proc/stat; /proc/PID/stat of the watcher, its plugin and Consul; getrusage for this program). The engine's work (dockerd, containerd, the shims, docker-proxy) and the containers are in the last column.\n\n",
			res.loadStart, orUnknown(res.loadEnd), r.machine.nproc)
		w("| Measurement | Time | All CPUs busy | `sdctl watch` + plugin | Consul | This program | Everything else |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, c := range res.cpu {
			if !c.ok {
				w("| %s | %s | unknown | | | | |\n", c.name, c.wall.Round(100*time.Millisecond))
				continue
			}
			w("| %s | %s | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% |\n", c.name, c.wall.Round(100*time.Millisecond), c.busy, c.watcher, c.consul, c.bench, c.theRest)
		}
		w("\n")
	}
}
