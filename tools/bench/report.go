package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Targets the report checks.
const (
	targetResolveSmall = 20 * time.Millisecond // p50 at 10 instances
	targetResolveLarge = 35 * time.Millisecond // p50 at 10,000 instances
	targetRSSKiB       = 30 * 1024             // peak RSS of each process
	targetConcurrent   = 50                    // concurrent registers that must all succeed
)

// Markers delimit the generated part of a file given to -write.
const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// machine describes where the benchmark ran.
type machine struct {
	date               time.Time
	nproc              int
	cpu                string
	memory             string
	kernel             string
	goVersion          string
	sdctlVersion       string
	sdctlGo            string
	sha256             string
	fsType             string
	loadStart, loadEnd string
	cpuUse             cpuShare
	curl               string
}

func gatherMachine(ctx context.Context, ws *workspace) machine {
	m := machine{
		date:      time.Now().UTC(),
		nproc:     runtime.NumCPU(),
		cpu:       procField("/proc/cpuinfo", "model name"),
		memory:    memTotal(),
		kernel:    readTrim("/proc/sys/kernel/ostype") + " " + readTrim("/proc/sys/kernel/osrelease"),
		goVersion: runtime.Version(),
		fsType:    fsType(ws.root),
		loadStart: readLoadavg(),
		sha256:    ws.sha256,
	}
	m.curl = "not installed"
	if out, err := exec.CommandContext(ctx, "curl", "--version").Output(); err == nil {
		m.curl, _, _ = strings.Cut(string(out), "\n")
		if f := strings.Fields(m.curl); len(f) >= 2 {
			m.curl = f[0] + " " + f[1]
		}
	}
	if bi, err := buildinfo.ReadFile(ws.sdctl); err == nil {
		m.sdctlGo = bi.GoVersion
	}
	if sc, err := ws.newScenario("version"); err == nil {
		if r, err := ws.sdctlCmd(sc, "version", "version").mustRun(ctx); err == nil {
			m.sdctlVersion, _, _ = strings.Cut(strings.TrimSpace(string(r.stdout)), "\n")
		}
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}

func memTotal() string {
	kib, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", kib/(1<<20))
}

// cpuSample is the machine's CPU time from /proc/stat and this program's own, with its
// children's, from getrusage.
type cpuSample struct {
	at          time.Time
	busy, total float64 // seconds, all CPUs
	ours        float64 // seconds, without the servers
	server      float64 // seconds used by the Consul and etcd servers the bench started
}

// clockTick is USER_HZ, the unit of /proc/stat.
const clockTick = 100

func readCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	f := strings.Fields(strings.SplitN(readTrim("/proc/stat"), "\n", 2)[0])
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	var v [8]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
	}
	// user nice system idle iowait irq softirq steal
	s.busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / clockTick
	s.total = s.busy + (v[3]+v[4])/clockTick
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			s.ours += time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	// A server is a child too: once reaped, its CPU time is in RUSAGE_CHILDREN.
	var reaped float64
	s.server, reaped = serversCPU()
	s.ours = max(0, s.ours-reaped)
	return s
}

// cpuShare is how busy the machine was between two samples, in percent of all CPUs.
type cpuShare struct {
	ok                         bool
	busy, ours, server, others float64
}

func cpuSince(start cpuSample) cpuShare {
	end := readCPU()
	total := end.total - start.total
	if start.total == 0 || total <= 0 {
		return cpuShare{}
	}
	busy := end.busy - start.busy
	ours := min(busy, end.ours-start.ours)
	server := max(0, min(busy-ours, end.server-start.server))
	return cpuShare{ok: true, busy: 100 * busy / total, ours: 100 * ours / total, server: 100 * server / total,
		others: 100 * max(0, busy-ours-server) / total}
}

// cells formats the share as table cells, with the servers' column when withServer.
func (c cpuShare) cells(withServer bool) string {
	if !c.ok {
		if withServer {
			return "unknown | | |"
		}
		return "unknown | |"
	}
	if withServer {
		return fmt.Sprintf("%.0f%% | %.0f%% | %.0f%% | %.0f%%", c.busy, c.ours, c.server, c.others)
	}
	return fmt.Sprintf("%.0f%% | %.0f%% | %.0f%%", c.busy, c.ours, c.others)
}

// partUse is one part of the run with the machine's CPU use while it ran.
type partUse struct {
	name    string
	elapsed time.Duration
	cpu     cpuShare
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}

func readLoadavg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// fsType names the file system holding dir, which decides what fsync costs.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	names := map[int64]string{
		0xef53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs", 0x9123683e: "btrfs",
		0x794c7630: "overlayfs", 0x6969: "nfs", 0x65735546: "fuse",
	}
	if n, ok := names[st.Type]; ok {
		return n
	}
	return fmt.Sprintf("type 0x%x", st.Type)
}

// report collects every result.
type report struct {
	cfg        *config
	machine    machine
	registries []*registryCase
	resolve    []*series
	warmFile   []*series // hello-world, then resolve with a warm file backend
	linkCost   []*series // the link-cost ladder, then sdctl version
	start      []*series
	debug      []*debugCase
	conc       []*concRun
	fileBulk   *fileBulkResult
	watch      *watchResult
	inits      *initResult
	consul     *backendCase
	etcd       *backendCase
	docker     *dockerResult
	floor      []int64 // /bin/true's RSS through the probe
	parts      []partUse
	elapsed    time.Duration
}

func (r *report) markdown() string {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.machine

	w("Produced by `%s` on %s in %s.\n\n", r.cfg.cmdline, m.date.Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second))
	w("| Machine | |\n|---|---|\n")
	w("| CPU | %d × %s (nproc %d) |\n", m.nproc, m.cpu, m.nproc)
	w("| Memory | %s |\n", m.memory)
	w("| Kernel | %s |\n", m.kernel)
	w("| Go | %s (bench); sdctl built with %s |\n", m.goVersion, orUnknown(m.sdctlGo))
	w("| sdctl | `%s`, sha256 %s… |\n", orUnknown(m.sdctlVersion), r.shortSHA())
	w("| Scratch file system | %s (registry files, plugin sockets, Consul and etcd data) |\n", m.fsType)
	w("| curl | %s |\n", m.curl)
	w("| Load average (1/5/15 min) | %s at start, %s at end |\n\n", m.loadStart, m.loadEnd)

	servers := r.cfg.consul || r.cfg.etcd || r.cfg.docker
	if servers {
		w("CPU use while each part ran, in percent of all %d CPUs (from /proc/stat; getrusage for this program and the processes it ran; /proc/PID/stat for the Consul and etcd servers while they run). The servers do the work asked of them in their parts; other processes compete with sdctl for the CPUs, so a high last column inflates the times of that part.", m.nproc)
		if r.cfg.docker {
			w(" In the Docker parts the Docker engine, containerd, their helper processes and the containers count as other processes; the watcher and its plugin count for this program once they have exited, at the end of each part.")
		}
		w("\n\n")
	} else {
		w("CPU use while each part ran, in percent of all %d CPUs (from /proc/stat, and getrusage for this program and the sdctl processes it ran). Other processes compete with sdctl for the CPUs, so a high last column inflates the times of that part.\n\n", m.nproc)
	}
	if servers {
		w("| Part | Time | All CPUs busy | This program + the commands it ran | Consul / etcd server | Other processes |\n|---|--:|--:|--:|--:|--:|\n")
	} else {
		w("| Part | Time | All CPUs busy | This program + sdctl | Other processes |\n|---|--:|--:|--:|--:|\n")
	}
	for _, s := range r.parts {
		w("| %s | %s | %s |\n", s.name, s.elapsed.Round(100*time.Millisecond), s.cpu.cells(servers))
	}
	w("| whole run | %s | %s |\n\n", r.elapsed.Round(100*time.Millisecond), m.cpuUse.cells(servers))

	r.writeTargets(&b)
	r.writeRegistries(&b)
	r.writeResolve(&b)
	r.writeWarmFile(&b)
	r.writeStart(&b)
	r.writeLinkCost(&b)
	r.writePhases(&b)
	r.writeInit(&b)
	r.writeRSS(&b)
	r.writeConcurrent(&b)
	r.writeFileBulk(&b)
	r.writeWatch(&b)
	num := 6
	for _, bc := range []*backendCase{r.consul, r.etcd} {
		if bc != nil {
			r.writeBackend(&b, bc, num)
			num++
		}
	}
	before := b.Len()
	r.writeBackendPhases(&b, r.phaseSection())
	num = r.phaseSection()
	if b.Len() > before {
		num++
	}
	r.writeDocker(&b, num)
	return b.String()
}

func (r *report) shortSHA() string {
	if len(r.machine.sha256) < 12 {
		return "unknown"
	}
	return r.machine.sha256[:12]
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**FAIL**"
}

// timedRow is one row of a latency table: what was timed, and every time it took.
type timedRow struct {
	label string
	d     []time.Duration
}

// writeLatencyTable writes a table of rows with their count, in a column headed count, and
// their p50, p90, p99, mean, min and max.
func writeLatencyTable(w func(string, ...any), count string, rows []timedRow) {
	w("| Measured | %s | p50 | p90 | p99 | mean | min | max |\n|---|--:|--:|--:|--:|--:|--:|--:|\n", count)
	for _, row := range rows {
		s := summarize(row.d)
		w("| %s | %d | %s | %s | %s | %s | %s | %s |\n", row.label, s.n, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean), ms(s.min), ms(s.max))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func (r *report) writeTargets(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Targets\n\n| Target | Measured | Result |\n|---|---|---|\n")
	for i, s := range r.resolve {
		target := targetResolveLarge
		if i == 0 {
			target = targetResolveSmall
		}
		sum := summarize(s.wall)
		w("| `resolve web` p50 ≤ %d ms, %s | %s | %s |\n", target/time.Millisecond, r.registries[i].label, ms(sum.p50),
			passFail(sum.n > 0 && s.failures == 0 && sum.p50 <= target))
	}
	for _, c := range r.debug {
		_, hostMax := medianMax(c.hostRSS)
		measured := mib(hostMax) + " (largest wait4 ru_maxrss)"
		if c.plugin {
			_, plugMax := medianMax(c.pluginRSS)
			measured += "; plugin alone " + mib(plugMax)
		}
		w("| peak RSS ≤ %d MiB per process: %s | %s | %s |\n", targetRSSKiB/1024, c.label, measured,
			passFail(len(c.hostRSS) > 0 && c.failures == 0 && hostMax <= targetRSSKiB))
	}
	var runs, errs, bad int
	for _, c := range r.conc {
		if c.procs != targetConcurrent {
			continue
		}
		runs++
		errs += c.errors
		if !c.ok() {
			bad++
		}
	}
	if runs > 0 {
		w("| %d concurrent `register` complete with 0 errors (and %d instances afterwards) | %d errors in %d runs; %d runs with a wrong registry | %s |\n",
			targetConcurrent, targetConcurrent, errs, runs, bad, passFail(bad == 0))
	}
	r.warmFileTargets(w)
	if res := r.inits; res != nil && len(res.total) > 0 {
		p50 := summarize(res.total).p50
		w("| package initialisation of the host (`sdctl version`), p50 ≤ %s | %s (%d packages) | %s |\n", ms(targetInit), ms(p50), res.packages, passFail(p50 <= targetInit))
	}
	r.consul.targets(w)
	r.etcd.targets(w)
	r.docker.targets(w)
	w("\n")
}

func (r *report) writeRegistries(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Registries\n\n| Registry | File size | Made by | Checked with sdctl |\n|---|---|---|---|\n")
	for _, rc := range r.registries {
		w("| %s | %.1f KiB | %s | %s |\n", rc.label, float64(rc.bytes)/1024, rc.seeded, rc.verified)
	}
	w("\n")
}

func (r *report) writeSeries(b *bytes.Buffer, rows []*series, baseline *series) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("| Command | Runs | p50 | p90 | p99 | mean | CPU/run (user+sys) |")
	if baseline != nil {
		w(" p50 ÷ host only | p50 − host only |")
	}
	w("\n|---|--:|--:|--:|--:|--:|--:|")
	if baseline != nil {
		w("--:|--:|")
	}
	w("\n")
	var base summary
	if baseline != nil {
		base = summarize(baseline.wall)
	}
	for _, s := range rows {
		sum := summarize(s.wall)
		runs := runsCell(sum.n, s.failures)
		w("| %s | %s | %s | %s | %s | %s | %s |", s.label, runs, ms(sum.p50), ms(sum.p90), ms(sum.p99), ms(sum.mean), ms(mean(s.cpu)))
		if baseline != nil {
			w(" %.2f× | %+.2f ms |", float64(sum.p50)/float64(base.p50), float64(sum.p50-base.p50)/float64(time.Millisecond))
		}
		w("\n")
	}
	for _, s := range rows {
		if s.failure != "" {
			w("\nFirst failure of %s: `%s`\n", s.label, s.failure)
		}
	}
	w("\n")
}

func (r *report) writeResolve(b *bytes.Buffer) {
	fmt.Fprintf(b, "### 1. `sdctl resolve web` wall time\n\n")
	fmt.Fprintf(b, "%d timed runs per registry after %d warm-up runs, the three registries taking turns. Wall time is from just before fork to wait4 returning; CPU is the rusage user+sys of sdctl and its plugin.\n\n",
		r.cfg.n, r.cfg.warmup)
	rows := make([]*series, len(r.resolve))
	for i, s := range r.resolve {
		c := *s
		c.label = "`resolve web`, " + s.label
		rows[i] = &c
	}
	r.writeSeries(b, rows, nil)
}

func (r *report) writeStart(b *bytes.Buffer) {
	fmt.Fprintf(b, "### 2. Cost of the plugin start\n\n")
	fmt.Fprintf(b, "%d timed runs per command after %d warm-up runs, taking turns, against the 10-instance registry. Ratios and differences are to `sdctl version`, which never starts a plugin.\n\n",
		r.cfg.startN, r.cfg.warmup)
	if len(r.start) > 1 {
		r.writeSeries(b, r.start, r.start[1])
	}
}

func (r *report) writePhases(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var cases []*debugCase
	for _, c := range r.debug {
		if c.plugin && len(c.phases[0]) > 0 {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		return
	}
	w("### Where a resolve spends its time\n\n")
	w("Means over %d runs with `--log-level debug` (the runs of section 3, through the RSS probe), from the probe starting sdctl to wait4 returning in the probe, split at the host's log lines `starting plugin`, `using plugin` and `plugin process exited` and at the moment the answer reached the bench's stdout pipe. Log timestamps have millisecond resolution (each is taken as its millisecond plus 0.5 ms), so single phases are good to about ±0.5 ms; debug logging makes the total slightly larger than in section 1.\n\n",
		r.cfg.rssN)
	w("| Phase |")
	for _, c := range cases {
		w(" %s |", strings.TrimPrefix(c.label, "`sdctl resolve web`, "))
	}
	w("\n|---|")
	for range cases {
		w("--:|")
	}
	w("\n")
	for p := range numPhases {
		w("| %s |", phaseNames[p])
		for _, c := range cases {
			w(" %s |", ms(mean(c.phases[p])))
		}
		w("\n")
	}
	w("| **total (mean wall time of these runs)** |")
	for _, c := range cases {
		var total time.Duration
		for p := range numPhases {
			total += mean(c.phases[p])
		}
		w(" **%s** |", ms(total))
	}
	w("\n\n")
}

func (r *report) writeInit(b *bytes.Buffer) {
	res := r.inits
	if res == nil || len(res.total) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Package initialisation\n\n")
	w("`GODEBUG=inittrace=1 sdctl version`, %d runs: the Go runtime reports the clock time of each package's init functions. Every sdctl process, host and plugin alike, pays this before `main` runs. (Writing the trace slows the process down, so only the inits' own clock time is summed.)\n\n", len(res.total))
	sum := summarize(res.total)
	w("| Measured | mean | p50 | max |\n|---|--:|--:|--:|\n")
	w("| sum of the %d package inits | %s | %s | %s |\n", res.packages, ms(sum.mean), ms(sum.p50), ms(sum.max))
	w("\nLargest inits (mean): ")
	for i, p := range res.top {
		if i > 0 {
			w(", ")
		}
		w("`%s` %s", p.name, ms(p.mean))
	}
	w(".\n\n")
}

func (r *report) writeRSS(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### 3. Peak RSS\n\n")
	floorMed, floorMax := floorText(r.floor)
	w("%d runs per command with `--log-level debug`. Median and largest of:\n\n", r.cfg.rssN)
	w("- **sdctl + descendants**: `ru_maxrss` from the rusage wait4 returns for the sdctl process. For a child, Linux reports the larger of the child's own peak and the peaks of the descendants it waited for — the plugin here, which the host always reaps before exiting. It is a maximum, not a sum: no moment had both processes at these sizes added together.")
	w(" These runs go through a small probe process, because a child's `ru_maxrss` starts at its parent's peak: Go starts children with vfork, and Linux records, at exec, the peak RSS of the memory the child ran on until then, which is its parent's. Measured directly, every command would show at least the bench's own peak (20-30 MiB late in a run). The probe (this program re-executed) starts the command while still small and reports the command's rusage; what remains is its own size, which `/bin/true` shows: %s median, %s max here.\n", floorMed, floorMax)
	w("- **plugin alone**: the plugin's own `ru_maxrss`, which the host logs at debug level as `backend plugin stopped ... max_rss_kib=N` after reaping it. By the same mechanism it is at least the sdctl host's RSS at the moment the host started the plugin.\n")
	w("- **host alone** cannot be read after the process has exited (`/proc/PID/status` VmHWM is gone with the process). `sdctl version` starts no plugin, so its figure is the host's own peak without a backend. For a resolve: when sdctl + descendants is larger than the plugin alone, it *is* the host's own peak; when the two are equal, the host's peak is at most that.\n\n")
	w("| Command | Runs | sdctl + descendants (median / max) | plugin alone (median / max) | ≤ %d MiB |\n|---|--:|--:|--:|:-:|\n", targetRSSKiB/1024)
	for _, c := range r.debug {
		hMed, hMax := medianMax(c.hostRSS)
		plug := "— (no plugin)"
		if c.plugin {
			pMed, pMax := medianMax(c.pluginRSS)
			plug = mib(pMed) + " / " + mib(pMax)
		}
		runs := runsCell(len(c.hostRSS), c.failures)
		w("| %s | %s | %s / %s | %s | %s |\n", c.label, runs, mib(hMed), mib(hMax), plug,
			passFail(len(c.hostRSS) > 0 && c.failures == 0 && hMax <= targetRSSKiB))
	}
	for _, c := range r.debug {
		if c.failure != "" {
			w("\nFirst failure of %s: `%s`\n", c.label, c.failure)
		}
	}
	w("\n")
}

// floorText is the median and largest RSS of /bin/true through the probe.
func floorText(floor []int64) (string, string) {
	if len(floor) == 0 {
		return "unknown", "unknown"
	}
	med, largest := medianMax(floor)
	return mib(med), mib(largest)
}

func (r *report) writeConcurrent(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if len(r.conc) == 0 {
		return
	}
	w("### 4. Concurrent registers\n\n")
	w("N `sdctl register svcI 127.0.0.1:PORT` processes released at once against one fresh registry file; the wall time runs from the release to the last exit, and the CPU column adds up the user+sys time of every sdctl process and its plugin. Afterwards the file is read and `sdctl catalog -o json` is run: each run must hold exactly N instances, one per process.\n\n")
	w("| Processes | Run | Wall time, all | Per process p50 / max | CPU, all processes | Errors | Instances in file | Catalog | Result |\n|--:|--:|--:|--:|--:|--:|--:|---|:-:|\n")
	runNo := map[int]int{}
	for _, c := range r.conc {
		runNo[c.procs]++
		sum := summarize(c.perProc)
		cat := c.catalog
		if c.verifyErr != "" {
			cat = c.verifyErr
		}
		inFile := itoa(c.inFile)
		if c.missing > 0 {
			inFile += fmt.Sprintf(" (%d missing)", c.missing)
		}
		w("| %d | %d | %s | %s / %s | %s | %d | %s | %s | %s |\n", c.procs, runNo[c.procs], ms(c.wall), ms(sum.p50), ms(sum.max), ms(c.cpu), c.errors, inFile, cat, passFail(c.ok()))
	}
	for _, c := range r.conc {
		for _, e := range c.errSample {
			w("\nError with %d processes: `%s`\n", c.procs, e)
		}
	}
	w("\n")
}

func (r *report) writeWatch(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	res := r.watch
	if res == nil {
		return
	}
	w("### 5. `resolve --watch` latency\n\n")
	w("`sdctl resolve web --watch` runs throughout; %d changes alternate `sdctl register web 127.0.0.1:PORT` and `sdctl deregister web 127.0.0.1:PORT`, 100 ms apart. Each is timed to the watch printing the new set. A negative time after exit would mean the watch printed the line before the changing command had exited (which, after its write, still stops its own plugin).\n\n", res.changes)
	writeLatencyTable(w, "Changes", []timedRow{
		{"watch line after the change command started", res.fromStart},
		{"watch line after the change command exited", res.fromExit},
		{"the change command's own wall time", res.cmdWall},
	})
	w("\nChanges not printed within %s: %d; lines that matched no expected set: %d.\n", watchTimeout, res.missed, res.extra)
	for _, f := range res.failures {
		w("\nFailed change: `%s`\n", f)
	}
	w("\n")
}

// errNoChange is what writeBetweenMarkers returns for empty text, after checking the file.
var errNoChange = errors.New("nothing to write")

// writeBetweenMarkers replaces the text between the begin and end markers of path. With empty
// text it only checks that the file has the markers.
func writeBetweenMarkers(path, text string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(data)
	i := strings.Index(s, beginMarker)
	j := strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s section to replace", path, beginMarker, endMarker)
	}
	if text == "" {
		return errNoChange
	}
	out := s[:i+len(beginMarker)] + "\n\n" + strings.TrimSpace(text) + "\n\n" + s[j:]
	return os.WriteFile(path, []byte(out), 0o644)
}
