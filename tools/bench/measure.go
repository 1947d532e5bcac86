package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// registryCase is a registry file that `sdctl resolve web` runs against.
type registryCase struct {
	label        string
	sc           *scenario
	instances    int // in the file
	services     int
	webInstances int
	bytes        int64
	seeded       string // how the file was made
	verified     string // what was checked
}

// prepareRegistries makes the three registries: 10 instances of web (made with sdctl
// register), 10,000 instances in 1,000 services of 10, and 10,000 instances of web (both
// written directly as JSON) — and checks that sdctl reads each of them back.
func prepareRegistries(ctx context.Context, ws *workspace) ([]*registryCase, error) {
	small, err := ws.newScenario("web-10")
	if err != nil {
		return nil, err
	}
	for i := 1; i <= 10; i++ {
		if _, err := ws.sdctlCmd(small, "register", "register", "web", "127.0.0.1:"+itoa(3000+i)).mustRun(ctx); err != nil {
			return nil, err
		}
	}
	cases := []*registryCase{{label: "10 instances (1 service)", sc: small, instances: 10, services: 1, webInstances: 10,
		seeded: "10 `sdctl register web 127.0.0.1:PORT` calls"}}
	for _, c := range []struct {
		label, dir           string
		services, perService int
	}{
		{"10,000 instances (1,000 services × 10)", "svc1000x10", 1000, 10},
		{"10,000 instances (1 service)", "web-10000", 1, 10000},
	} {
		sc, err := ws.newScenario(c.dir)
		if err != nil {
			return nil, err
		}
		if err := writeRegistry(sc.registry, seedRecords(c.services, c.perService)); err != nil {
			return nil, err
		}
		cases = append(cases, &registryCase{label: c.label, sc: sc, instances: c.services * c.perService,
			services: c.services, webInstances: c.perService, seeded: "JSON document written directly, sorted by ID"})
	}
	for _, rc := range cases {
		if err := rc.verify(ctx, ws); err != nil {
			return nil, fmt.Errorf("%s: %w", rc.label, err)
		}
		rc.bytes = fileSize(rc.sc.registry)
	}
	return cases, nil
}

// verify checks the registry with sdctl itself: resolve picks a web instance, resolve --all
// lists exactly the web instances, and the catalog counts every service and instance.
func (rc *registryCase) verify(ctx context.Context, ws *workspace) error {
	doc, err := readRegistry(rc.sc.registry)
	if err != nil {
		return err
	}
	if len(doc.Instances) != rc.instances {
		return fmt.Errorf("file holds %d instances, want %d", len(doc.Instances), rc.instances)
	}
	one, err := ws.sdctlCmd(rc.sc, "resolve", "resolve", "web").mustRun(ctx)
	if err != nil {
		return err
	}
	all, err := ws.sdctlCmd(rc.sc, "resolve --all", "resolve", "web", "--all").mustRun(ctx)
	if err != nil {
		return err
	}
	lines := strings.Fields(string(all.stdout))
	if len(lines) != rc.webInstances {
		return fmt.Errorf("resolve web --all printed %d instances, want %d", len(lines), rc.webInstances)
	}
	if picked := strings.TrimSpace(string(one.stdout)); !slices.Contains(lines, picked) {
		return fmt.Errorf("resolve web printed %q, not one of the web instances", picked)
	}
	services, instances, err := ws.catalog(ctx, rc.sc)
	if err != nil {
		return err
	}
	if services != rc.services || instances != rc.instances {
		return fmt.Errorf("catalog shows %d services and %d instances, want %d and %d", services, instances, rc.services, rc.instances)
	}
	rc.verified = fmt.Sprintf("`resolve web` → %s; `resolve web --all` → %s; `catalog` → %s, %s",
		strings.TrimSpace(string(one.stdout)), plural(len(lines), "instance"), plural(services, "service"), plural(instances, "instance"))
	return nil
}

// series is the timed runs of one command.
type series struct {
	label    string
	wall     []time.Duration
	cpu      []time.Duration
	rss      []int64
	failures int
	failure  string // the first failure
}

// timeInterleaved runs each invocation warmup times, then n timed rounds in which every
// invocation runs once in turn, so that drift in machine load affects all of them alike.
func timeInterleaved(ctx context.Context, invs []invocation, n, warmup int) ([]*series, error) {
	out := make([]*series, len(invs))
	for i, inv := range invs {
		out[i] = &series{label: inv.label}
	}
	for round := -warmup; round < n; round++ {
		for i, inv := range invs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r := inv.run(ctx)
			if round < 0 {
				continue
			}
			s := out[i]
			if !r.ok() {
				s.failures++
				if s.failure == "" {
					s.failure = r.failure()
				}
				continue
			}
			s.wall = append(s.wall, r.wall)
			s.cpu = append(s.cpu, r.cpu)
			s.rss = append(s.rss, r.maxRSS)
		}
	}
	return out, nil
}

// measureResolve times `sdctl resolve web` against each registry.
func measureResolve(ctx context.Context, ws *workspace, regs []*registryCase, cfg *config) ([]*series, error) {
	invs := make([]invocation, len(regs))
	for i, rc := range regs {
		invs[i] = ws.sdctlCmd(rc.sc, rc.label, "resolve", "web")
	}
	return timeInterleaved(ctx, invs, cfg.n, cfg.warmup)
}

// measureStart times process start without sdctl, sdctl without a plugin, and sdctl starting
// its backend, also with --plugin-mtls, all against the 10-instance registry.
func measureStart(ctx context.Context, ws *workspace, rc *registryCase, cfg *config) ([]*series, error) {
	invs := []invocation{
		{label: "`" + ws.true + "` (process start baseline)", path: ws.true, sc: rc.sc},
		ws.sdctlCmd(rc.sc, "`sdctl version` (host only, no plugin)", "version"),
		ws.sdctlCmd(rc.sc, "`sdctl resolve web` (starts the plugin)", "resolve", "web"),
		ws.sdctlCmd(rc.sc, "`sdctl --plugin-mtls resolve web` (never warm: a backend on a socket pair)", "--plugin-mtls", "resolve", "web"),
	}
	return timeInterleaved(ctx, invs, cfg.startN, cfg.warmup)
}

// Phases of a resolve, marked by the host's debug log and by the first stdout bytes.
const (
	phaseHost     = iota // exec to "starting plugin": process start, Go runtime, flags, config
	phasePlugin          // "starting plugin" to "using plugin": plugin fork/exec, init, first answer
	phaseQuery           // "using plugin" to the answer on stdout: Configure, Instances, print
	phaseShutdown        // answer to "plugin process exited": stopping the plugin
	phaseExit            // "plugin process exited" to exit: host teardown
	numPhases
)

var phaseNames = [numPhases]string{
	"host start: exec, Go runtime init, flags and config, up to `starting plugin`",
	"plugin fork/exec, its init and its first answer (Info), up to `using plugin`",
	"Configure, Instances (reads and parses the file), pick, print",
	"plugin shutdown, up to `plugin process exited`",
	"host teardown and exit",
}

// debugCase is the runs of one command with --log-level debug.
type debugCase struct {
	label     string
	plugin    bool
	hostRSS   []int64 // wait4's ru_maxrss of the sdctl process, through the probe
	pluginRSS []int64 // the plugin's own, from the debug log
	phases    [numPhases][]time.Duration
	failures  int
	failure   string
}

var (
	logLineRE = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d{4}))\s+\[\w+\]\s+sdctl: ([a-z ]+):`)
	maxRSSRE  = regexp.MustCompile(`backend plugin stopped:.*\bmax_rss_kib=(\d+)`)
)

// hclog's default time format; its timestamps are truncated to the millisecond.
const logTimeLayout = "2006-01-02T15:04:05.000Z0700"

// measureDebugRuns runs `sdctl version` and `sdctl resolve web` (and the mTLS variant) with
// --log-level debug, for peak RSS and for a breakdown of where a resolve spends its time.
func measureDebugRuns(ctx context.Context, ws *workspace, regs []*registryCase, cfg *config) ([]*debugCase, error) {
	invs := []invocation{ws.sdctlCmd(regs[0].sc, "`sdctl version`", "--log-level", "debug", "version")}
	for _, rc := range regs {
		invs = append(invs, ws.sdctlCmd(rc.sc, "`sdctl resolve web`, "+rc.label, "--log-level", "debug", "resolve", "web"))
	}
	invs = append(invs, ws.sdctlCmd(regs[0].sc, "`sdctl --plugin-mtls resolve web`, "+regs[0].label, "--log-level", "debug", "--plugin-mtls", "resolve", "web"))

	cases := make([]*debugCase, len(invs))
	for i := range invs {
		invs[i].probe = true // for the RSS; see probe.go
		cases[i] = &debugCase{label: invs[i].label, plugin: i > 0}
	}
	for round := -cfg.warmup; round < cfg.rssN; round++ {
		for i, inv := range invs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r := inv.run(ctx)
			if round >= 0 {
				cases[i].add(&r)
			}
		}
	}
	if c := cases[0]; c.failures > 0 && strings.Contains(c.failure, "started a plugin") {
		return nil, fmt.Errorf("%s: %s", c.label, c.failure)
	}
	return cases, nil
}

func (c *debugCase) fail(msg string) {
	c.failures++
	if c.failure == "" {
		c.failure = msg
	}
}

// add records one run: its RSS figures and, when every mark is in the log, its phases.
func (c *debugCase) add(r *result) {
	if !r.ok() {
		c.fail(r.failure())
		return
	}
	marks := map[string]time.Time{}
	var pluginRSS int64 = -1
	for _, line := range strings.Split(string(r.stderr), "\n") {
		if m := maxRSSRE.FindStringSubmatch(line); m != nil {
			pluginRSS, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := logLineRE.FindStringSubmatch(line); m != nil {
			if t, err := time.Parse(logTimeLayout, m[1]); err == nil {
				// Half a millisecond is the expected truncation of each timestamp.
				marks[m[2]] = t.Add(500 * time.Microsecond)
			}
		}
	}
	_, started := marks["starting plugin"]
	if !c.plugin {
		if started || pluginRSS >= 0 {
			c.fail("`sdctl version` started a plugin")
			return
		}
		c.hostRSS = append(c.hostRSS, r.maxRSS)
		return
	}
	if pluginRSS < 0 {
		c.fail("no `backend plugin stopped ... max_rss_kib=` line in the debug log")
		return
	}
	c.hostRSS = append(c.hostRSS, r.maxRSS)
	c.pluginRSS = append(c.pluginRSS, pluginRSS)

	end := r.start.Add(r.wall)
	points := []time.Time{r.start, marks["starting plugin"], marks["using plugin"], r.firstOut, marks["plugin process exited"], end}
	for _, p := range points {
		if p.IsZero() {
			return // a mark is missing: leave this run out of the breakdown
		}
	}
	for i := range numPhases {
		c.phases[i] = append(c.phases[i], points[i+1].Sub(points[i]))
	}
}

// measureProbeFloor runs /bin/true through the RSS probe: what it reports is the least any
// command can show there, the probe's own RSS when it started the command.
func measureProbeFloor(ctx context.Context, ws *workspace, sc *scenario, cfg *config) ([]int64, error) {
	inv := invocation{label: "true", path: ws.true, sc: sc, probe: true}
	var out []int64
	for round := -cfg.warmup; round < cfg.rssN; round++ {
		r, err := inv.mustRun(ctx)
		if err != nil {
			return nil, fmt.Errorf("RSS probe: %w", err)
		}
		if round >= 0 {
			out = append(out, r.maxRSS)
		}
	}
	return out, nil
}

// concRun is one start of many concurrent `sdctl register` processes on a fresh registry.
type concRun struct {
	procs int
	atOnce
	inFile    int    // instances in the file afterwards
	missing   int    // expected IDs not in the file
	catalog   string // what `catalog -o json` counted
	verifyErr string
}

func (c *concRun) ok() bool {
	return c.errors == 0 && c.inFile == c.procs && c.missing == 0 && c.verifyErr == ""
}

// measureConcurrent starts the configured numbers of `sdctl register svcN 127.0.0.1:PORT`
// processes at once against one registry file and checks what the file holds afterwards.
func measureConcurrent(ctx context.Context, ws *workspace, cfg *config) ([]*concRun, error) {
	var out []*concRun
	for _, procs := range cfg.conc {
		for run := 1; run <= cfg.concRuns; run++ {
			sc, err := ws.newScenario(fmt.Sprintf("register-%dx-%d", procs, run))
			if err != nil {
				return nil, err
			}
			c, err := concurrentRegister(ctx, ws, sc, procs)
			if err != nil {
				return nil, err
			}
			progress("  %d concurrent registers, run %d: %s, %d errors, %d instances in the file",
				procs, run, c.wall.Round(time.Millisecond), c.errors, c.inFile)
			out = append(out, c)
		}
	}
	return out, nil
}

func concurrentRegister(ctx context.Context, ws *workspace, sc *scenario, procs int) (*concRun, error) {
	c := &concRun{procs: procs}
	invs := make([]invocation, procs)
	for i := range invs {
		invs[i] = ws.sdctlCmd(sc, "register", "register", fmt.Sprintf("svc%d", i), fmt.Sprintf("127.0.0.1:%d", 20000+i))
	}
	if err := c.run(ctx, invs); err != nil {
		return nil, err
	}

	doc, err := readRegistry(sc.registry)
	if err != nil {
		c.verifyErr = err.Error()
		return c, nil //nolint:nilerr // reported in the table, not a failed run
	}
	c.inFile = len(doc.Instances)
	ids := map[string]bool{}
	for _, in := range doc.Instances {
		ids[in.ID] = true
	}
	for i := range procs {
		if !ids[fmt.Sprintf("svc%d-127.0.0.1-%d", i, 20000+i)] {
			c.missing++
		}
	}
	services, instances, err := ws.catalog(ctx, sc)
	if err != nil {
		c.verifyErr = err.Error()
		return c, nil //nolint:nilerr // reported in the table, not a failed run
	}
	c.catalog = plural(services, "service") + ", " + plural(instances, "instance")
	if services != procs || instances != procs {
		c.verifyErr = "catalog shows " + c.catalog
	}
	return c, nil
}

// watchResult is the latency of `sdctl resolve web --watch`.
type watchResult struct {
	changes   int
	fromStart []time.Duration // the watch's line after the change command started
	fromExit  []time.Duration // ... after it exited; negative when the line came first
	cmdWall   []time.Duration // the change commands' own wall time
	// The same for the deregistrations alone.
	deregStart, deregExit, deregWall []time.Duration
	missed                           int // changes the watch did not print within watchTimeout
	extra                            int // lines that did not match the expected set
	failures                         []string
}

const watchTimeout = 5 * time.Second

type watchLine struct {
	text string
	at   time.Time
}

// watchSpec says what a watch-latency test runs.
type watchSpec struct {
	sc      *scenario
	global  []string // sdctl flags before the command, such as --backend consul
	initial []string // HOST:PORT of the web instances registered before the watch starts
	changes int
	// removeFirst: every even change deregisters one of the initial instances and the next
	// registers it again. Otherwise every even change registers a new instance on port
	// 5000 and up, and the next deregisters it.
	removeFirst bool
}

// measureWatch starts `sdctl resolve web --watch` against a file registry holding one
// instance, then alternately registers and deregisters a web instance, and times each change
// until the watch prints the new set.
func measureWatch(ctx context.Context, ws *workspace, cfg *config) (*watchResult, error) {
	sc, err := ws.newScenario("watch")
	if err != nil {
		return nil, err
	}
	const base = "127.0.0.1:3000"
	if _, err := ws.sdctlCmd(sc, "register", "register", "web", base).mustRun(ctx); err != nil {
		return nil, err
	}
	return watchLatency(ctx, ws, watchSpec{sc: sc, initial: []string{base}, changes: cfg.watchN})
}

// watchLatency runs the changes of spec against a running `sdctl resolve web --watch`.
func watchLatency(ctx context.Context, ws *workspace, spec watchSpec) (*watchResult, error) {
	sc := spec.sc
	sdctl := func(label string, args ...string) invocation {
		return ws.sdctlCmd(sc, label, append(slices.Clip(spec.global), args...)...)
	}
	cmd := sdctl("watch", "resolve", "web", "--watch").command(ctx)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &stampWriter{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan watchLine, 256)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		s.Buffer(nil, 1<<20)
		for s.Scan() {
			lines <- watchLine{text: s.Text(), at: time.Now()}
		}
	}()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	want := map[string]bool{}
	for _, a := range spec.initial {
		want[a] = true
	}
	if _, err := waitForSet(ctx, lines, want, 10*time.Second); err != nil {
		return nil, fmt.Errorf("watch never printed the initial instances: %w (stderr: %s)", err, strings.TrimSpace(stderr.buf.String()))
	}
	res := &watchResult{}
	for i := range spec.changes {
		time.Sleep(100 * time.Millisecond) // let the previous change settle
		for drained := false; !drained; {
			select {
			case <-lines:
				res.extra++
			default:
				drained = true
			}
		}
		addr := "127.0.0.1:" + itoa(5000+i/2)
		register := i%2 == 0
		if spec.removeFirst {
			addr = spec.initial[(i/2)%len(spec.initial)]
			register = !register
		}
		var inv invocation
		if register {
			inv = sdctl("register", "register", "web", addr)
			want[addr] = true
		} else {
			inv = sdctl("deregister", "deregister", "web", addr)
			delete(want, addr)
		}
		r := inv.run(ctx)
		res.changes++
		if !r.ok() {
			res.failures = append(res.failures, inv.label+": "+r.failure())
			return res, nil // the expected set is unknown from here on
		}
		res.cmdWall = append(res.cmdWall, r.wall)
		if !register {
			res.deregWall = append(res.deregWall, r.wall)
		}
		got, err := waitForSet(ctx, lines, want, watchTimeout)
		res.extra += got.skipped
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.missed++
			continue
		}
		fromStart, fromExit := got.at.Sub(r.start), got.at.Sub(r.start.Add(r.wall))
		res.fromStart = append(res.fromStart, fromStart)
		res.fromExit = append(res.fromExit, fromExit)
		if !register {
			res.deregStart = append(res.deregStart, fromStart)
			res.deregExit = append(res.deregExit, fromExit)
		}
	}
	return res, nil
}

type watchMatch struct {
	at      time.Time
	skipped int
}

// waitForSet waits for a watch line listing exactly the instances in want.
func waitForSet(ctx context.Context, lines <-chan watchLine, want map[string]bool, timeout time.Duration) (watchMatch, error) {
	var m watchMatch
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return m, errors.New("the watch exited")
			}
			fields := strings.Fields(l.text)
			match := len(fields) == len(want)
			for _, f := range fields {
				match = match && want[f]
			}
			if match {
				m.at = l.at
				return m, nil
			}
			m.skipped++
		case <-timer.C:
			return m, fmt.Errorf("no matching line within %s", timeout)
		case <-ctx.Done():
			return m, ctx.Err()
		}
	}
}

// summary is the distribution of a series of durations.
type summary struct {
	n                             int
	p50, p90, p99, mean, min, max time.Duration
}

func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return summary{n: len(s), p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99),
		mean: sum / time.Duration(len(s)), min: s[0], max: s[len(s)-1]}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile[T cmp.Ordered](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// medianMax returns the median and the largest of values.
func medianMax(values []int64) (median, largest int64) {
	if len(values) == 0 {
		return 0, 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return percentile(s, 50), s[len(s)-1]
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return sum / time.Duration(len(d))
}

// initResult is sdctl's package initialisation cost, from GODEBUG=inittrace=1.
type initResult struct {
	packages int
	total    []time.Duration // sum of the inits' clock time, per run
	top      []pkgInit       // the largest, by mean
}

type pkgInit struct {
	name string
	mean time.Duration
}

var initLineRE = regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock`)

// measureInit runs `sdctl version` with GODEBUG=inittrace=1 and adds up the package inits.
func measureInit(ctx context.Context, ws *workspace, rc *registryCase, cfg *config) (*initResult, error) {
	inv := ws.sdctlCmd(rc.sc, "version", "version")
	inv.env = []string{"GODEBUG=inittrace=1"}
	res := &initResult{}
	perPkg := map[string]time.Duration{}
	for round := -cfg.warmup; round < cfg.rssN; round++ {
		r, err := inv.mustRun(ctx)
		if err != nil {
			return nil, err
		}
		if round < 0 {
			continue
		}
		var total time.Duration
		n := 0
		for _, line := range strings.Split(string(r.stderr), "\n") {
			m := initLineRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			clock, _ := strconv.ParseFloat(m[2], 64)
			d := time.Duration(clock * float64(time.Millisecond))
			total += d
			perPkg[m[1]] += d
			n++
		}
		if n == 0 {
			return nil, errors.New("no inittrace lines on stderr")
		}
		res.packages = n
		res.total = append(res.total, total)
	}
	for name, d := range perPkg {
		res.top = append(res.top, pkgInit{name: name, mean: d / time.Duration(len(res.total))})
	}
	slices.SortFunc(res.top, func(a, b pkgInit) int { return cmp.Or(cmp.Compare(b.mean, a.mean), strings.Compare(a.name, b.name)) })
	res.top = res.top[:min(6, len(res.top))]
	return res, nil
}
