package main

import (
	"bytes"
	"fmt"
	"time"
)

// Targets of the Consul and etcd parts.
const (
	targetCurlRatio  = 1.0                    // sdctl resolve p50 ≤ 1× curl's (warm backend)
	targetCLIRatio   = 0.5                    // sdctl resolve p50 ≤ 0.5× the consul CLI's
	targetWatchDereg = 100 * time.Millisecond // p99, deregister start to the watch's line
)

// p50Ratio is a's p50 over b's, and whether both have runs and no failures.
func p50Ratio(a, b *series) (ratio float64, ok bool) {
	if a == nil || b == nil {
		return 0, false
	}
	sa, sb := summarize(a.wall), summarize(b.wall)
	if sa.n == 0 || sb.n == 0 || sb.p50 == 0 {
		return 0, false
	}
	return float64(sa.p50) / float64(sb.p50), a.failures == 0 && b.failures == 0
}

// backendTargets are the rows of the Targets table for one server.
func (b *backendCase) targets(w func(string, ...any)) {
	if b == nil || b.sdctlS == nil {
		return
	}
	sd := summarize(b.sdctlS.wall)
	if b.curl == "" {
		w("| %s p50 ≤ %.0f× curl | curl not installed: not measured | — |\n", b.sdctlLabel(), targetCurlRatio)
	} else {
		r, ok := p50Ratio(b.sdctlS, b.curlS)
		w("| %s p50 ≤ %.0f× curl | %s vs %s: %.2f× | %s |\n", b.sdctlLabel(), targetCurlRatio, ms(sd.p50), ms(summarize(b.curlS.wall).p50), r,
			passFail(ok && r <= targetCurlRatio))
	}
	if b.cliS != nil {
		r, ok := p50Ratio(b.sdctlS, b.cliS)
		w("| %s p50 ≤ %.1f× %s | %s vs %s: %.2f× | %s |\n", b.sdctlLabel(), targetCLIRatio, b.cliLabel(), ms(sd.p50), ms(summarize(b.cliS.wall).p50), r,
			passFail(ok && r <= targetCLIRatio))
	}
	if res := b.watch; res != nil {
		s := summarize(res.deregStart)
		w("| %s: `deregister` → `resolve --watch` prints the change, p99 ≤ %d ms | %s (from the start of `deregister`; %d of %d printed) | %s |\n",
			b.title, targetWatchDereg/time.Millisecond, ms(s.p99), s.n, len(res.deregWall), passFail(res.ok() && s.n > 0 && s.p99 <= targetWatchDereg))
	}
}

// ok reports a watch test without failed commands or missed changes.
func (res *watchResult) ok() bool { return len(res.failures) == 0 && res.missed == 0 }

func (r *report) writeBackend(b *bytes.Buffer, bc *backendCase, num int) {
	if bc == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### %d. %s\n\n", num, bc.title)
	w("Server: %s, %s; serving %s after it was started. Its data directory is in the scratch directory, and it is stopped when this part ends.\n\n",
		bc.srv.version, bc.srv.flags, bc.srv.started.Round(10*time.Millisecond))
	env := "CONSUL_HTTP_ADDR"
	if bc.kind == "etcd" {
		env = "ETCDCTL_ENDPOINTS"
	}
	w("Every command runs with `%s=ADDR` (the server's loopback address), in its own scratch HOME. `web` has %d instances, registered with `sdctl --backend %s register web 127.0.0.1:PORT`; checked before timing: %s.\n\n",
		env, webInstances, bc.kind, bc.verified)

	w("#### %d.1 `resolve web` next to %s's own clients\n\n", num, bc.title)
	if bc.kind == "consul" {
		w("sdctl reads `/v1/health/service/web?passing&stale` through its plugin and prints one instance; curl fetches the same health entries, all 10, and prints them; the consul CLI (the server binary itself, %s) asks the catalog for the nodes of the service and prints a table. ", binSize(bc.srv.bin))
	} else {
		w("sdctl reads the keys under `/services/web/` through its plugin (an etcd v3 gRPC client) and prints one instance; curl sends the same range request to etcd's JSON gateway and prints the answer (values base64-encoded). ")
	}
	w("%d timed runs per command after %d warm-up runs, taking turns. Peak RSS is wait4's `ru_maxrss` (for sdctl the larger of the host and its plugin) from %d further runs of each command through the RSS probe described in section 3 (sdctl with `--log-level debug` there, for the plugin's figure and the phases in section %d).\n\n",
		r.cfg.n, r.cfg.warmup, r.cfg.rssN, r.phaseSection())
	if bc.curl == "" {
		w("curl is not installed here (`command -v curl` finds nothing), so it is left out of the comparison.\n\n")
	}
	w("| Command | Runs | p50 | p90 | p99 | mean | CPU/run (user+sys) | peak RSS (median / max) |")
	if bc.curlS != nil {
		w(" sdctl p50 ÷ this p50 |")
	}
	w("\n|---|--:|--:|--:|--:|--:|--:|--:|")
	if bc.curlS != nil {
		w("--:|")
	}
	w("\n")
	for _, s := range bc.compare {
		sum := summarize(s.wall)
		runs := runsCell(sum.n, s.failures)
		rss := "—"
		if v := bc.rss[s.label]; len(v) > 0 {
			rssMed, rssMax := medianMax(v)
			rss = mib(rssMed) + " / " + mib(rssMax)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |", s.label, runs, ms(sum.p50), ms(sum.p90), ms(sum.p99), ms(sum.mean), ms(mean(s.cpu)), rss)
		if bc.curlS != nil {
			if ratio, _ := p50Ratio(bc.sdctlS, s); ratio > 0 {
				w(" %.2f× |", ratio)
			} else {
				w(" — |")
			}
		}
		w("\n")
	}
	for _, s := range bc.compare {
		if s.failure != "" {
			w("\nFirst failure of %s: `%s`\n", s.label, s.failure)
		}
	}
	if c := bc.debug; c != nil {
		hMed, hMax := medianMax(c.hostRSS)
		pMed, pMax := medianMax(c.pluginRSS)
		w("\nIn the %d runs of `sdctl --backend %s --log-level debug resolve web`, sdctl + descendants peaked at %s median / %s max (the table's figure), the plugin alone (its `max_rss_kib` debug line) at %s / %s.",
			len(c.pluginRSS), bc.kind, mib(hMed), mib(hMax), mib(pMed), mib(pMax))
		if c.failures > 0 {
			w(" %d runs failed; the first: `%s`.", c.failures, c.failure)
		}
		w("\n")
	}
	w("\nTargets: ")
	first := true
	sep := func() {
		if !first {
			w("; ")
		}
		first = false
	}
	if bc.curlS != nil {
		ratio, ok := p50Ratio(bc.sdctlS, bc.curlS)
		sep()
		w("sdctl p50 ≤ %.0f× curl: %.2f× %s", targetCurlRatio, ratio, passFail(ok && ratio <= targetCurlRatio))
	} else {
		sep()
		w("sdctl p50 ≤ %.0f× curl: not measured (no curl)", targetCurlRatio)
	}
	if bc.cliS != nil {
		ratio, ok := p50Ratio(bc.sdctlS, bc.cliS)
		sep()
		w("sdctl p50 ≤ %.1f× the consul CLI: %.2f× %s", targetCLIRatio, ratio, passFail(ok && ratio <= targetCLIRatio))
	}
	w(".\n\n")

	if res := bc.watch; res != nil {
		w("#### %d.2 `deregister` → `resolve --watch`\n\n", num)
		w("`sdctl --backend %s resolve web --watch` runs throughout; %d changes, 100 ms apart, alternate `sdctl --backend %s deregister web 127.0.0.1:PORT` of one of the %d instances and `register` of the same instance again. Each is timed until the watch prints the new set. A negative time after exit means the watch printed the change before the changing command had exited: after its write it still stops its plugin. Target: p99 ≤ %d ms for a deregistration, from the moment the `deregister` command starts.\n\n",
			bc.kind, res.changes, bc.kind, webInstances, targetWatchDereg/time.Millisecond)
		writeLatencyTable(w, "Changes", []timedRow{
			{"deregistration: watch line after `deregister` started", res.deregStart},
			{"deregistration: watch line after `deregister` exited", res.deregExit},
			{"`deregister`'s own wall time", res.deregWall},
			{"all changes: watch line after the command started", res.fromStart},
			{"all changes: watch line after the command exited", res.fromExit},
		})
		s := summarize(res.deregStart)
		w("\nChanges not printed within %s: %d; lines that matched no expected set: %d. Target p99 ≤ %d ms: %s %s.\n",
			watchTimeout, res.missed, res.extra, targetWatchDereg/time.Millisecond, ms(s.p99), passFail(res.ok() && s.n > 0 && s.p99 <= targetWatchDereg))
		for _, f := range res.failures {
			w("\nFailed change: `%s`\n", f)
		}
		w("\n")
	}

	if len(bc.bulk) > 0 {
		w("#### %d.3 Registering %s instances\n\n", num, thousands(bc.bulk[0].instances))
		how := "entries without a check"
		if bc.bulk[0].ttl != "" {
			how = "`\"ttl\": \"" + bc.bulk[0].ttl + "\"` in every entry: each instance gets a lease of its own, and its key is written with it"
		}
		w("`sdctl --backend %s register -f FILE` with a JSON batch file (%s): first one process with all of them, then the same number split over several processes started at once, each batch into a new service, which the bench removes again through the server's API once it is checked, so that every batch starts from the same 10 `web` instances. `register -f` registers its entries one after another, one backend call each. Wall time runs from the start to the last exit; the rate is instances over that time; CPU adds up every sdctl process and its plugin. Then the server is asked directly how many it lists (",
			bc.kind, how)
		if bc.kind == "consul" {
			w("passing health entries: the agent copies its registrations into the catalog in the background, so the time until all are listed can be later than the last exit")
		} else {
			w("keys under the service's prefix, and how many of them have a lease")
		}
		w("), and `sdctl resolve SERVICE --all` must print all of them.\n\n")
		w("| Processes | Instances | Wall time | Rate | Per process p50 / max | CPU, all processes | Errors | Listed by the server | All listed after |")
		if bc.kind == "etcd" {
			w(" With a lease |")
		}
		w(" `resolve --all` | Result |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		if bc.kind == "etcd" {
			w("--:|")
		}
		w("--:|:-:|\n")
		for _, run := range bc.bulk {
			sum := summarize(run.perProc)
			after := secs(run.listedAt)
			if run.listed < run.instances {
				after = "not within 30 s"
			}
			w("| %d | %s | %s | %.0f/s | %s / %s | %s | %d | %s | %s |", run.procs, thousands(run.instances), secs(run.wall), run.rate(),
				secs(sum.p50), secs(sum.max), secs(run.cpu), run.errors, thousands(run.listed), after)
			if bc.kind == "etcd" {
				w(" %s |", thousands(run.leased))
			}
			w(" %s | %s |\n", thousands(run.resolved), passFail(run.ok()))
		}
		for _, run := range bc.bulk {
			for _, e := range run.errSample {
				w("\nError with %d processes: `%s`\n", run.procs, e)
			}
			if run.verifyErr != "" {
				w("\nCheck after %d processes failed: `%s`\n", run.procs, run.verifyErr)
			}
		}
		w("\n")
	}
	r.writeWrites(b, bc, num)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// phaseSection is the number of the section comparing the phases of a resolve.
func (r *report) phaseSection() int {
	n := 6
	for _, bc := range []*backendCase{r.consul, r.etcd} {
		if bc != nil {
			n++
		}
	}
	return n
}

// binSize describes the size of an executable.
func binSize(path string) string {
	n := fileSize(path)
	if n < 0 {
		return "size unknown"
	}
	return fmt.Sprintf("a %.0f MB Go program", float64(n)/1e6)
}

// writeBackendPhases compares the phases of a resolve on the file, Consul and etcd backends.
func (r *report) writeBackendPhases(b *bytes.Buffer, num int) {
	type col struct {
		label string
		c     *debugCase
		curl  *series
	}
	var cols []col
	for _, c := range r.debug {
		if c.plugin && len(c.phases[0]) > 0 {
			cols = append(cols, col{label: "file, 10 instances", c: c})
			break
		}
	}
	for _, bc := range []*backendCase{r.consul, r.etcd} {
		if bc != nil && bc.debug != nil && len(bc.debug.phases[0]) > 0 {
			cols = append(cols, col{label: bc.title + ", 10 instances", c: bc.debug, curl: bc.curlS})
		}
	}
	if len(cols) < 2 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### %d. Where a Consul or etcd resolve spends its time\n\n", num)
	w("Means over %d runs each with `--log-level debug` (through the RSS probe, whose own start is not counted), split as in the table for the file backend above (same method, same ±0.5 ms resolution); the file column is that table's 10-instance case. The curl row is its p50 from the comparisons above.\n\n", r.cfg.rssN)
	w("| Phase |")
	for _, c := range cols {
		w(" %s |", c.label)
	}
	w("\n|---|")
	for range cols {
		w("--:|")
	}
	w("\n")
	for p := range numPhases {
		name := phaseNames[p]
		if p == phaseQuery {
			name = "gRPC connect, Configure, the backend's read (file: read and parse the file; Consul: one HTTP request to the agent; etcd: dial the member, one range read), pick, print"
		}
		w("| %s |", name)
		for _, c := range cols {
			w(" %s |", ms(mean(c.c.phases[p])))
		}
		w("\n")
	}
	w("| **total (mean wall time of these runs)** |")
	for _, c := range cols {
		var total time.Duration
		for p := range numPhases {
			total += mean(c.c.phases[p])
		}
		w(" **%s** |", ms(total))
	}
	w("\n| for comparison: curl of the same data, p50 |")
	for _, c := range cols {
		if c.curl != nil {
			w(" %s |", ms(summarize(c.curl.wall).p50))
		} else {
			w(" — |")
		}
	}
	w("\n\n")
}
