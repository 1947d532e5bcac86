package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
)

// What the Docker part measures, with `sdctl watch` as a subprocess (one per measurement, so
// that each starts from the same state and its CPU time is accounted to its own part):
//
//   - containers started and stopped one at a time: from the engine's `start` event to the
//     instance in Consul's health API, and from the `die` event until it is gone from it;
//   - many containers started at once: from the last `start` event until all are listed;
//   - a periodic (--resync) reconcile with many containers running and nothing changed: its
//     duration and its writes, from the watcher's log and /metrics, and Consul's own view;
//   - the watcher's and its plugin's RSS with those containers running.
//
// Consul is watched with blocking queries on /v1/health/service/bench-web, so a change is
// seen as soon as Consul has it, and the time taken is when the answer arrived.

const (
	watchReadyTimeout  = 60 * time.Second
	watchStopTimeout   = 10 * time.Second
	watchResync        = 10 * time.Second // the watcher's --resync
	healthWait         = "5s"             // a blocking query's wait
	reconcileWaitLimit = 3*watchResync + 30*time.Second
)

// dockerResult is everything the Docker part measured.
type dockerResult struct {
	engine     string
	image      string
	imageSize  int64
	imageBuild time.Duration
	srv        *server
	watchArgs  string // the watcher's command line, with placeholders
	loadStart  string
	loadEnd    string
	seq        *seqResult
	burst      *burstResult
	rec        *reconcileResult
	recov      *recoveryResult
	cpu        []dockerCPU
}

// setup builds the image, starts this part's Consul agent and follows the engine's events.
func (d *dockerPart) setup(ctx context.Context, ws *workspace, consulBin string, keep func(*server), res *dockerResult) error {
	res.loadStart = readLoadavg()
	res.engine = d.engine
	if err := d.buildImage(ctx); err != nil {
		return err
	}
	res.image, res.imageSize, res.imageBuild = d.image, d.imageSize, d.imageBuild
	progress("  built %s (%.1f MB) in %s", d.image, float64(d.imageSize)/1e6, d.imageBuild.Round(time.Millisecond))
	// A Consul agent of its own, in a directory of its own.
	srv, err := startConsul(ctx, filepath.Join(ws.root, "docker"), consulBin)
	keep(srv)
	if err != nil {
		return err
	}
	d.srv, res.srv = srv, srv
	progress("  consul (%s) serving on %s after %s", srv.version, srv.addr, srv.started.Round(time.Millisecond))
	if d.sc, err = ws.newScenario("docker-watch"); err != nil {
		return err
	}
	d.sc.env = append(d.sc.env, "CONSUL_HTTP_ADDR="+srv.addr)
	res.watchArgs = "sdctl --backend consul watch --label " + benchLabel + "=RUN --node-id " + benchNode + " --listen 127.0.0.1:PORT --resync " + watchResync.String()
	d.followEvents(ctx)
	return nil
}

// dockerSteps are the parts of the run for the Docker measurements; the last one removes what
// the bench created in the engine and stops the Consul agent.
func dockerSteps(ctx context.Context, ws *workspace, cfg *config, d *dockerPart, consulBin string, keep func(*server), out **dockerResult) []part {
	res := &dockerResult{}
	*out = res
	steps := []part{{"Docker: build the image, start Consul", func() error { return d.setup(ctx, ws, consulBin, keep, res) }}}
	// Each measurement with its container count from the flags; a count of 0 leaves it out.
	for _, m := range []struct {
		n       int
		name    string // with the count for %d
		measure func(n int) error
	}{
		{cfg.watchContainers, "Docker: start → visible, stop → gone ×%d",
			func(n int) (err error) { res.seq, err = d.measureSequential(ctx, ws, n, res); return err }},
		{cfg.watchBurst, "Docker: %d containers started at once",
			func(n int) (err error) { res.burst, err = d.measureBurst(ctx, ws, n, res); return err }},
		{cfg.watchReconcile, "Docker: reconcile and RSS with %d containers",
			func(n int) (err error) { res.rec, err = d.measureReconcile(ctx, ws, n, res); return err }},
		{cfg.watchRecovery, "Docker: idle request rate, Consul restarted empty with %d containers",
			func(n int) (err error) { res.recov, err = d.measureRecovery(ctx, ws, n); return err }},
	} {
		if m.n > 0 {
			steps = append(steps, part{fmt.Sprintf(m.name, m.n), func() error { return m.measure(m.n) }})
		}
	}
	last := steps[len(steps)-1].fn
	steps[len(steps)-1].fn = func() error {
		if err := last(); err != nil {
			return err
		}
		if !d.srv.running() {
			return fmt.Errorf("consul exited during the run\n%s", d.srv.LogTail(30))
		}
		d.srv.Stop()
		if err := d.cleanup(); err != nil {
			return err
		}
		progress("  removed %s", strings.Join(d.cleaned, ", "))
		res.loadEnd = readLoadavg()
		return nil
	}
	return steps
}

// ---- the watcher process ----

// watchProc is one `sdctl watch` started by the bench.
type watchProc struct {
	cmd     *exec.Cmd
	pid     int
	addr    string // of /metrics and /healthz
	log     *watchLog
	done    chan struct{}
	stop    sync.Once
	started time.Time
}

// startWatcher starts `sdctl --backend consul watch` against this part's agent and waits until
// it serves /healthz and has made its first reconcile.
func (d *dockerPart) startWatcher(ctx context.Context, ws *workspace, tag string) (*watchProc, error) {
	return d.startWatcherWith(ctx, ws, tag, watchResync, "")
}

// startWatcherWith is startWatcher with another --resync (0: none) and, when consul is set,
// another CONSUL_HTTP_ADDR.
func (d *dockerPart) startWatcherWith(ctx context.Context, ws *workspace, tag string, resync time.Duration, consul string) (*watchProc, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--backend", "consul", "watch", "--label", d.label, "--node-id", benchNode, "--listen", addr}
	if resync > 0 {
		args = append(args, "--resync", resync.String())
	}
	logPath := filepath.Join(d.sc.dir, "watch-"+tag+".log")
	lw, err := newWatchLog(logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lw.file, "--- bench: %s %s\n", ws.sdctl, strings.Join(args, " "))
	cmd := exec.Command(ws.sdctl, args...)
	cmd.Env = d.sc.env
	if consul != "" {
		cmd.Env = append(slices.Clone(cmd.Env), "CONSUL_HTTP_ADDR="+consul)
	}
	cmd.Dir = d.sc.dir
	cmd.Stdout, cmd.Stderr = lw, lw
	// Its own process group, so that a Ctrl-C in the terminal reaches the bench, which stops
	// it; the kernel kills it should the bench die.
	w := &watchProc{cmd: cmd, addr: addr, log: lw, done: make(chan struct{})}
	w.started = time.Now()
	if err := harness.StartProcess(cmd); err != nil {
		lw.file.Close()
		return nil, err
	}
	w.pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		lw.file.Close()
		close(w.done)
	}()
	d.mu.Lock()
	d.watcher = w
	d.mu.Unlock()

	deadline := time.Now().Add(watchReadyTimeout)
	for {
		ok := w.healthy() == nil
		if ok {
			if _, _, err := w.log.find(0, func(l watcherLine) bool { return l.msg == "reconciled" && l.kv["reason"] == "start" }); err == nil {
				return w, nil
			}
		}
		select {
		case <-w.done:
			return nil, fmt.Errorf("sdctl watch exited (%v) before it was ready\n%s", cmd.ProcessState, w.log.tail(20))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sdctl watch not ready after %s: %v\n%s", watchReadyTimeout, w.healthy(), w.log.tail(20))
		}
	}
}

func (w *watchProc) healthy() error {
	resp, err := httpClient.Get("http://" + w.addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Stop ends the watcher with SIGTERM, and its process group with SIGKILL if it has not exited
// after watchStopTimeout. It is safe to call more than once, and on nil.
func (w *watchProc) Stop() {
	if w == nil {
		return
	}
	w.stop.Do(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(watchStopTimeout):
			progress("sdctl watch did not stop within %s of SIGTERM; killing it", watchStopTimeout)
			_ = syscall.Kill(-w.pid, syscall.SIGKILL) // the group: the plugin too
			<-w.done
		}
	})
}

// finish ends a measurement: it stops the watcher first (it has nothing to do with the
// removals), then removes the containers of cs that were created, and returns how many.
func (d *dockerPart) finish(w *watchProc, cs []benchContainer) int {
	d.stopWatcher(w)
	var made []benchContainer
	for _, c := range cs {
		if c.ID != "" {
			made = append(made, c)
		}
	}
	if err := d.removeContainers(made); err != nil {
		progress("  %v", err)
	}
	return len(made)
}

func (d *dockerPart) stopWatcher(w *watchProc) {
	w.Stop()
	d.mu.Lock()
	if d.watcher == w {
		d.watcher = nil
	}
	d.mu.Unlock()
}

// metrics scrapes /metrics into a map from "name{labels}" to value.
func (w *watchProc) metrics() (map[string]float64, error) {
	resp, err := httpClient.Get("http://" + w.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, s.Err()
}

// pluginPIDs are the watcher's child processes: its backend plugin.
func (w *watchProc) pluginPIDs() []int { return childPIDs(w.pid) }

// childPIDs lists the children of pid, from /proc/PID/task/*/children where the kernel has it,
// else from the parent field of every /proc/*/stat.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	if len(tasks) > 0 {
		slices.Sort(out)
		return slices.Compact(out)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 1 && f[1] == itoa(pid) { // field 4, ppid
			out = append(out, n)
		}
	}
	return out
}

// memInfo is a process's memory, in KiB: from /proc/PID/status its peak (VmHWM) and current
// RSS, split into anonymous and file-backed pages, and from /proc/PID/smaps_rollup its
// proportional share (PSS), in which pages shared with other processes (the binary's text,
// mapped by the watcher and its plugin alike) count divided among them.
type memInfo struct {
	hwm, rss, anon, file, pss int64
}

func (m *memInfo) add(o memInfo) {
	m.hwm += o.hwm
	m.rss += o.rss
	m.anon += o.anon
	m.file += o.file
	m.pss += o.pss
}

func procMem(pid int) (memInfo, error) {
	var m memInfo
	fields := func(path string, want map[string]*int64) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if p := want[k]; ok && p != nil {
				*p, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
		return nil
	}
	dir := "/proc/" + itoa(pid) + "/"
	if err := fields(dir+"status", map[string]*int64{"VmHWM": &m.hwm, "VmRSS": &m.rss, "RssAnon": &m.anon, "RssFile": &m.file}); err != nil {
		return m, err
	}
	if m.hwm == 0 || m.rss == 0 {
		return m, fmt.Errorf("%sstatus: no VmHWM or VmRSS", dir)
	}
	_ = fields(dir+"smaps_rollup", map[string]*int64{"Pss": &m.pss}) // 0 where the kernel lacks it
	return m, nil
}

// watcherLine is one line of the watcher's log: `TIME [LEVEL]  sdctl.watch: MSG: k=v ...`.
type watcherLine struct {
	at   time.Time // the log's timestamp: its millisecond plus 0.5 ms
	msg  string    // "added", "removed", "reconciled" ...
	kv   map[string]string
	text string
}

var (
	watchLogRE = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d{4}))\s+\[\w+\]\s+sdctl\.watch: ([a-z][a-z ]*?):(?: (.*))?$`)
	watchKVRE  = regexp.MustCompile(`([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)`)
)

// watchLog collects the watcher's stderr into a file and parses its lines as they come.
type watchLog struct {
	mu      sync.Mutex
	file    *os.File
	partial []byte
	lines   []watcherLine
	raw     []string
	changed chan struct{}
}

func newWatchLog(path string) (*watchLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &watchLog{file: f, changed: make(chan struct{})}, nil
}

func (l *watchLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.file.Write(p) // the log copy on disk is a convenience; the in-memory one is what is parsed
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		text := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.raw = append(l.raw, text)
		if m := watchLogRE.FindStringSubmatch(text); m != nil {
			t, err := time.Parse(logTimeLayout, m[1])
			if err != nil {
				continue
			}
			wl := watcherLine{at: t.Add(500 * time.Microsecond), msg: m[2], kv: map[string]string{}, text: text}
			for _, kv := range watchKVRE.FindAllStringSubmatch(m[3], -1) {
				v := kv[2]
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				wl.kv[kv[1]] = v
			}
			l.lines = append(l.lines, wl)
			added = true
		}
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// find returns the first parsed line from index from on that matches, and the index after it.
func (l *watchLog) find(from int, match func(watcherLine) bool) (watcherLine, int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.lines); i++ {
		if match(l.lines[i]) {
			return l.lines[i], i + 1, nil
		}
	}
	return watcherLine{}, len(l.lines), errors.New("no such line")
}

// wait is find, waiting up to timeout for the line to come.
func (l *watchLog) wait(ctx context.Context, from int, timeout time.Duration, match func(watcherLine) bool) (watcherLine, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		line, next, err := l.find(from, match)
		if err == nil {
			return line, next, nil
		}
		from = next
		select {
		case <-ch:
		case <-deadline.C:
			return watcherLine{}, from, fmt.Errorf("no such line in the watcher's log within %s", timeout)
		case <-ctx.Done():
			return watcherLine{}, from, ctx.Err()
		}
	}
}

func (l *watchLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// awaitFor returns the time of the first line msg about container name, waiting a little for
// it: the watcher writes its line after the registry call returned, which can be after Consul
// lists the change.
func (l *watchLog) awaitFor(ctx context.Context, msg, name string) (time.Time, bool) {
	line, _, err := l.wait(ctx, 0, 5*time.Second, func(ln watcherLine) bool { return ln.msg == msg && ln.kv["container"] == name })
	return line.at, err == nil
}

func (l *watchLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.raw
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- last lines of the watcher's log:\n" + strings.Join(lines, "\n")
}

// ---- Consul's view ----

// healthView is one answer of /v1/health/service/bench-web.
type healthView struct {
	at    time.Time // when the answer arrived
	index uint64
	ids   map[string]bool
	first bool // the first answer of a follow already matched
}

// healthOnce asks for the health entries of the bench's service; with index > 0 it is a
// blocking query that returns once Consul has a newer state (or after healthWait).
func (d *dockerPart) healthOnce(ctx context.Context, index uint64) (healthView, error) {
	u := "http://" + d.srv.addr + "/v1/health/service/" + benchService
	if index > 0 {
		u += "?index=" + strconv.FormatUint(index, 10) + "&wait=" + healthWait
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return healthView{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return healthView{}, err
	}
	v := healthView{at: time.Now(), ids: map[string]bool{}}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	v.index, _ = strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	var entries []struct {
		Service struct{ ID string }
	}
	if err := json.Unmarshal(body, &entries); err != nil {
		return v, fmt.Errorf("GET %s: %w", u, err)
	}
	for _, e := range entries {
		v.ids[e.Service.ID] = true
	}
	return v, nil
}

// awaitHealth follows the health entries with blocking queries until done matches an answer,
// for up to timeout. It returns once the first answer is in (so that what the caller does
// next is seen by a blocking query already under way, or by the next one), with the channel
// that delivers the matching answer.
func (d *dockerPart) awaitHealth(ctx context.Context, timeout time.Duration, done func(healthView) bool) (<-chan healthResult, error) {
	primed := make(chan struct{})
	out := make(chan healthResult, 1)
	fctx, cancel := context.WithTimeout(ctx, timeout)
	go func() {
		defer cancel()
		var index uint64
		for first := true; ; first = false {
			v, err := d.healthOnce(fctx, index)
			if first {
				close(primed)
			}
			if err != nil {
				if fctx.Err() != nil {
					err = fmt.Errorf("not seen in Consul within %s", timeout)
				}
				out <- healthResult{err: err}
				return
			}
			v.first = first
			if done(v) {
				out <- healthResult{v: v}
				return
			}
			// Consul's index can go backwards (a snapshot restore): start over then.
			if v.index < index || v.index == 0 {
				index = 1
			} else {
				index = v.index
			}
		}
	}()
	select {
	case <-primed:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type healthResult struct {
	v   healthView
	err error
}

// consulState is what the bench reads from Consul to tell whether it saw writes.
type consulState struct {
	agentServices []byte // GET /v1/agent/services
	benchServices int    // of them, instances of the bench's service
	catalogIndex  uint64 // X-Consul-Index of GET /v1/catalog/services
}

func (d *dockerPart) consulState() (consulState, error) {
	var st consulState
	resp, err := httpClient.Get("http://" + d.srv.addr + "/v1/agent/services")
	if err != nil {
		return st, err
	}
	st.agentServices, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return st, err
	}
	var svcs map[string]struct{ Service string }
	if err := json.Unmarshal(st.agentServices, &svcs); err != nil {
		return st, fmt.Errorf("/v1/agent/services: %w", err)
	}
	for _, s := range svcs {
		if s.Service == benchService {
			st.benchServices++
		}
	}
	resp, err = httpClient.Get("http://" + d.srv.addr + "/v1/catalog/services")
	if err != nil {
		return st, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	st.catalogIndex, err = strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		return st, fmt.Errorf("/v1/catalog/services: no X-Consul-Index: %w", err)
	}
	return st, nil
}

// ---- CPU use while a measurement runs ----

// dockerCPU is the CPU use during one measurement, in percent of all CPUs.
type dockerCPU struct {
	name                                  string
	wall                                  time.Duration
	busy, watcher, consul, bench, theRest float64
	ok                                    bool
}

type dockerCPUSample struct {
	at                     time.Time
	busy, total            float64
	watcher, consul, bench float64
}

func (d *dockerPart) sampleCPU(w *watchProc) dockerCPUSample {
	c := readCPU()
	s := dockerCPUSample{at: c.at, busy: c.busy, total: c.total}
	s.watcher = harness.ProcCPU(w.pid).Seconds()
	for _, p := range w.pluginPIDs() {
		s.watcher += harness.ProcCPU(p).Seconds()
	}
	if d.srv != nil {
		total, _ := d.srv.CPUTime()
		s.consul = total.Seconds()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return s
}

func cpuBetween(name string, a, b dockerCPUSample) dockerCPU {
	total := b.total - a.total
	r := dockerCPU{name: name, wall: b.at.Sub(a.at)}
	if a.total == 0 || total <= 0 {
		return r
	}
	pct := func(v float64) float64 { return 100 * max(0, v) / total }
	r.ok = true
	r.busy = pct(b.busy - a.busy)
	r.watcher = pct(b.watcher - a.watcher)
	r.consul = pct(b.consul - a.consul)
	r.bench = pct(b.bench - a.bench)
	r.theRest = max(0, r.busy-r.watcher-r.consul-r.bench)
	return r
}

// ---- 1. one at a time ----

// seqResult is containers started and stopped one at a time.
type seqResult struct {
	n    int
	up   seqSide // `start` event → listed by the health API
	down seqSide // `die` event → no longer listed
	// `die` event → the engine answered an inspect of the container that the bench sent as
	// soon as it had the event, as the watcher does on its own copy of the event: how long
	// the engine takes to answer one then.
	dieInspect []time.Duration
	startCall  []time.Duration // the ContainerStart call
	stopCall   []time.Duration // the ContainerStop call
	failures   []string
	exitCodes  map[string]int // exit code of the `die` events → containers
}

func (r *seqResult) ok() bool {
	return r.up.missed == 0 && r.down.missed == 0 && len(r.failures) == 0 && len(r.up.took) == r.n && len(r.down.took) == r.n
}

// fail keeps the first failures.
func (r *seqResult) fail(format string, args ...any) {
	if len(r.failures) < 5 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

// seqSide is one half of the one-at-a-time test: starts and their listing, or stops and their
// removal.
type seqSide struct {
	what  string // "start → visible"
	early string // the failure when Consul showed the change before it was made
	line  string // the watcher's log line for the change: "added", "removed"

	took []time.Duration // the engine's event → the health API's answer that showed the change
	// From the watcher's log (millisecond timestamps): the event → its line, and that line →
	// the answer (negative: the answer came before the line was written).
	toLine, lineToAnswer []time.Duration
	missed               int // changes Consul did not show within dockerVisibleMax
}

// record adds one change of container c: hv is the health API's answer that showed it (or why
// none did), at and evErr the engine's event.
func (s *seqSide) record(ctx context.Context, r *seqResult, w *watchProc, c benchContainer, hv healthResult, at time.Time, evErr error) {
	switch {
	case hv.err != nil:
		s.missed++
		r.fail("%s: %s: %v", c.Name, s.what, hv.err)
	case hv.v.first:
		r.fail("%s: %s", c.Name, s.early)
	case evErr != nil:
		r.fail("%s: %v", c.Name, evErr)
	default:
		s.took = append(s.took, hv.v.at.Sub(at))
		if lineAt, ok := w.log.awaitFor(ctx, s.line, c.Name); ok {
			s.toLine = append(s.toLine, lineAt.Sub(at))
			s.lineToAnswer = append(s.lineToAnswer, hv.v.at.Sub(lineAt))
		}
	}
}

func (d *dockerPart) measureSequential(ctx context.Context, ws *workspace, n int, res *dockerResult) (*seqResult, error) {
	w, err := d.startWatcher(ctx, ws, "sequential")
	if err != nil {
		return nil, err
	}
	defer d.stopWatcher(w)
	r := &seqResult{n: n, exitCodes: map[string]int{},
		up:   seqSide{what: "start → visible", early: "listed before it was started", line: "added"},
		down: seqSide{what: "stop → gone", early: "not listed any more before it was stopped", line: "removed"}}
	var made []benchContainer
	defer func() { d.finish(w, made) }()
	cpu0 := d.sampleCPU(w)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond) // let the previous container's events settle
		c, err := d.createContainer("seq")
		if err != nil {
			return nil, err
		}
		made = append(made, c)
		iid := c.instanceID()

		visible, err := d.awaitHealth(ctx, dockerVisibleMax, func(v healthView) bool { return v.ids[iid] })
		if err != nil {
			return nil, err
		}
		t := time.Now()
		if err := d.startContainer(c); err != nil {
			return nil, err
		}
		r.startCall = append(r.startCall, time.Since(t))
		hv := <-visible
		startAt, evErr := d.ev.wait(ctx, c.ID, "start", 10*time.Second)
		r.up.record(ctx, r, w, c, hv, startAt, evErr)
		if hv.err != nil {
			continue // not registered: nothing to remove
		}

		gone, err := d.awaitHealth(ctx, dockerVisibleMax, func(v healthView) bool { return !v.ids[iid] })
		if err != nil {
			return nil, err
		}
		inspected := make(chan time.Time, 1)
		go func() {
			var at time.Time
			if _, err := d.ev.wait(ctx, c.ID, "die", dockerVisibleMax); err == nil {
				at, _ = d.inspectDone(c)
			}
			inspected <- at
		}()
		t = time.Now()
		if err := d.stopContainer(c); err != nil {
			return nil, err
		}
		r.stopCall = append(r.stopCall, time.Since(t))
		hv = <-gone
		dieAt, evErr := d.ev.wait(ctx, c.ID, "die", 10*time.Second)
		if at := <-inspected; evErr == nil && !at.IsZero() {
			r.dieInspect = append(r.dieInspect, at.Sub(dieAt))
		}
		if evErr == nil {
			r.exitCodes[d.ev.exitCode(c.ID)]++
		}
		r.down.record(ctx, r, w, c, hv, dieAt, evErr)
		if i%10 == 9 || i == n-1 {
			progress("  %d of %d containers: start → visible p50 %s, stop → gone p50 %s", i+1, n,
				ms(summarize(r.up.took).p50), ms(summarize(r.down.took).p50))
		}
	}
	res.cpu = append(res.cpu, cpuBetween(fmt.Sprintf("%d containers one at a time", n), cpu0, d.sampleCPU(w)))
	return r, nil
}

// ---- 2. many at once ----

// burstResult is many containers started at once.
type burstResult struct {
	n, workers  int
	create      time.Duration // creating them all, before the start
	startCalls  time.Duration // the first ContainerStart call to the last one's return
	startSpread time.Duration // first to last `start` event
	allVisible  time.Duration // last `start` event → all listed (the target)
	fromFirst   time.Duration // first `start` event → all listed
	lastAdded   time.Duration // last `start` event → the watcher's last `added` line
	listed      int           // listed at the end of the wait
	stopCalls   time.Duration
	allGone     time.Duration // last `die` event → none listed
	goneOK      bool
	failure     string
}

func (r *burstResult) ok() bool { return r.failure == "" && r.listed == r.n }

func (d *dockerPart) measureBurst(ctx context.Context, ws *workspace, n int, res *dockerResult) (*burstResult, error) {
	w, err := d.startWatcher(ctx, ws, "burst")
	if err != nil {
		return nil, err
	}
	defer d.stopWatcher(w)
	r := &burstResult{n: n, workers: dockerWorkers}
	cs := make([]benchContainer, n)
	defer func() { d.finish(w, cs) }()
	if r.create, err = timedForEach(ctx, n, func(i int) (err error) { cs[i], err = d.createContainer("burst"); return err }); err != nil {
		return nil, err
	}

	cpu0 := d.sampleCPU(w)
	listed := func(v healthView) int {
		k := 0
		for _, c := range cs {
			if v.ids[c.instanceID()] {
				k++
			}
		}
		return k
	}
	var lastView healthView
	var viewMu sync.Mutex
	all, err := d.awaitHealth(ctx, 2*time.Minute, func(v healthView) bool {
		viewMu.Lock()
		lastView = v
		viewMu.Unlock()
		return listed(v) == n
	})
	if err != nil {
		return nil, err
	}
	if r.startCalls, err = timedForEach(ctx, n, func(i int) error { return d.startContainer(cs[i]) }); err != nil {
		return nil, err
	}
	hv := <-all
	first, last, err := d.eventSpan(ctx, cs, "start")
	if err != nil {
		return nil, err
	}
	r.startSpread = last.Sub(first)
	if hv.err != nil {
		viewMu.Lock()
		r.listed = listed(lastView)
		viewMu.Unlock()
		r.failure = fmt.Sprintf("%d of %d listed: %v", r.listed, n, hv.err)
	} else {
		r.listed = n
		r.allVisible = hv.v.at.Sub(last)
		r.fromFirst = hv.v.at.Sub(first)
	}
	var lastAdd time.Time
	for _, c := range cs {
		if at, ok := w.log.awaitFor(ctx, "added", c.Name); ok && at.After(lastAdd) {
			lastAdd = at
		}
	}
	if !lastAdd.IsZero() {
		r.lastAdded = lastAdd.Sub(last)
	}
	progress("  %d started at once: all listed %s after the last start event (%d listed)", n, ms(r.allVisible), r.listed)
	res.cpu = append(res.cpu, cpuBetween(fmt.Sprintf("%d containers started at once", n), cpu0, d.sampleCPU(w)))

	// Stop them all at once too, and see them go.
	cpu0 = d.sampleCPU(w)
	none, err := d.awaitHealth(ctx, 2*time.Minute, func(v healthView) bool { return listed(v) == 0 })
	if err != nil {
		return nil, err
	}
	if r.stopCalls, err = timedForEach(ctx, n, func(i int) error { return d.stopContainer(cs[i]) }); err != nil {
		return nil, err
	}
	hv = <-none
	_, lastDie, err := d.eventSpan(ctx, cs, "die")
	if err != nil {
		return nil, err
	}
	if hv.err == nil {
		r.goneOK = true
		r.allGone = hv.v.at.Sub(lastDie)
	}
	res.cpu = append(res.cpu, cpuBetween(fmt.Sprintf("%d containers stopped at once", n), cpu0, d.sampleCPU(w)))
	return r, nil
}

// eventSpan waits for the engine's action event ("start", "die") of each of cs and returns the
// time of the first and of the last.
func (d *dockerPart) eventSpan(ctx context.Context, cs []benchContainer, action string) (first, last time.Time, err error) {
	for _, c := range cs {
		at, err := d.ev.wait(ctx, c.ID, action, 30*time.Second)
		if err != nil {
			return first, last, err
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last, nil
}

// ---- 3. and 4. reconcile and RSS ----

// reconcileResult is a periodic reconcile with many containers running and nothing changed,
// and the watcher's memory then.
type reconcileResult struct {
	n, batch, workers int
	startTook         time.Duration // creating and starting all of them
	visibleAfter      time.Duration // from the first create until all were listed
	poll              time.Duration // how often the listing was checked meanwhile

	line         string        // the watcher's `reconciled` line
	took         time.Duration // its took=, rounded to the millisecond
	histTook     time.Duration // the histogram's _sum delta, when its _count grew by exactly one
	histCount    float64       // the _count delta
	containers   int           // its containers=
	writesLog    int           // its writes=
	writesGauge  float64       // sdctl_watch_reconcile_writes afterwards
	resyncDelta  float64       // growth of sdctl_watch_reconciles_total{reason="resync"}
	regDelta     float64       // growth of registrations_total + deregistrations_total
	before       consulState
	after        consulState
	waitedResync time.Duration // from all listed to the end of that reconcile

	watcherMem, pluginMem memInfo
	plugins               int // child processes of the watcher
	rssErr                string
}

func (r *reconcileResult) agentSame() bool {
	return bytes.Equal(r.before.agentServices, r.after.agentServices)
}

func (r *reconcileResult) ok() bool {
	return r.line != "" && r.writesLog == 0 && r.writesGauge == 0 && r.regDelta == 0 && r.agentSame() &&
		r.before.catalogIndex == r.after.catalogIndex && r.containers == r.n
}

// took is the best figure for the reconcile's duration: the histogram's exact one, else the
// log's.
func (r *reconcileResult) duration() time.Duration {
	if r.histCount == 1 {
		return r.histTook
	}
	return r.took
}

func (d *dockerPart) measureReconcile(ctx context.Context, ws *workspace, n int, res *dockerResult) (*reconcileResult, error) {
	w, err := d.startWatcher(ctx, ws, "reconcile")
	if err != nil {
		return nil, err
	}
	defer d.stopWatcher(w)
	r := &reconcileResult{n: n, batch: dockerBatch, workers: dockerWorkers, poll: 500 * time.Millisecond}
	cs := make([]benchContainer, n)
	defer func() {
		t := time.Now()
		k := d.finish(w, cs)
		progress("  removed %d containers in %s", k, time.Since(t).Round(time.Millisecond))
	}()

	cpu0 := d.sampleCPU(w)
	t0 := time.Now()
	for b := 0; b < n; b += dockerBatch {
		k := min(dockerBatch, n-b)
		err := forEach(ctx, k, dockerWorkers, func(i int) error {
			c, err := d.createContainer("many")
			if err != nil {
				return err
			}
			cs[b+i] = c
			return d.startContainer(c)
		})
		if err != nil {
			return nil, err
		}
		if (b+k)%100 == 0 || b+k == n {
			progress("  %d of %d containers running after %s", b+k, n, time.Since(t0).Round(time.Millisecond))
		}
	}
	r.startTook = time.Since(t0)
	res.cpu = append(res.cpu, cpuBetween(fmt.Sprintf("starting %d containers", n), cpu0, d.sampleCPU(w)))

	// Until all are listed: a plain query every poll, not a blocking one per change, which
	// would decode the whole list hundreds of times while the bench measures nothing.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, err := d.healthOnce(ctx, 0)
		if err != nil {
			return nil, err
		}
		k := 0
		for _, c := range cs {
			if v.ids[c.instanceID()] {
				k++
			}
		}
		if k == n {
			r.visibleAfter = v.at.Sub(t0)
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d containers listed in Consul after %s\n%s", k, n, time.Since(t0).Round(time.Second), w.log.tail(20))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.poll):
		}
	}
	listedAt := time.Now()
	progress("  all %d listed in Consul %s after the first create; waiting for a resync reconcile", n, secs(r.visibleAfter))

	// The state before: metrics, the agent's services, the catalog index. The reconcile that
	// counts is the first --resync one that started after this.
	cpu0 = d.sampleCPU(w)
	m0, err := w.metrics()
	if err != nil {
		return nil, err
	}
	if r.before, err = d.consulState(); err != nil {
		return nil, err
	}
	snapEnd := time.Now()
	from := w.log.len()
	var line watcherLine
	for {
		line, from, err = w.log.wait(ctx, from, reconcileWaitLimit, func(l watcherLine) bool {
			return l.msg == "reconciled" && l.kv["reason"] == "resync"
		})
		if err != nil {
			return nil, fmt.Errorf("waiting for a resync reconcile: %w\n%s", err, w.log.tail(20))
		}
		took, err := time.ParseDuration(line.kv["took"])
		if err != nil {
			return nil, fmt.Errorf("reconciled line without a took=: %q", line.text)
		}
		// The line's time is its millisecond plus 0.5 ms, took is rounded to the millisecond:
		// the start is known to about ±1 ms. One that may have started before the snapshot
		// ended does not count.
		if line.at.Add(-took).Add(-2 * time.Millisecond).After(snapEnd) {
			r.took = took
			break
		}
	}
	r.waitedResync = time.Since(listedAt)
	r.line = strings.TrimSpace(line.text[strings.Index(line.text, "reconciled"):])
	r.containers, _ = strconv.Atoi(line.kv["containers"])
	r.writesLog, _ = strconv.Atoi(line.kv["writes"])
	m1, err := w.metrics()
	if err != nil {
		return nil, err
	}
	if r.after, err = d.consulState(); err != nil {
		return nil, err
	}
	res.cpu = append(res.cpu, cpuBetween("waiting for and running the resync reconcile", cpu0, d.sampleCPU(w)))
	const hist = "sdctl_watch_reconcile_duration_seconds"
	r.histCount = m1[hist+"_count"] - m0[hist+"_count"]
	r.histTook = time.Duration((m1[hist+"_sum"] - m0[hist+"_sum"]) * float64(time.Second))
	r.writesGauge = m1["sdctl_watch_reconcile_writes"]
	r.resyncDelta = m1[`sdctl_watch_reconciles_total{reason="resync"}`] - m0[`sdctl_watch_reconciles_total{reason="resync"}`]
	r.regDelta = m1["sdctl_watch_registrations_total"] + m1["sdctl_watch_deregistrations_total"] -
		m0["sdctl_watch_registrations_total"] - m0["sdctl_watch_deregistrations_total"]
	progress("  %s (histogram: %s over %.0f reconcile); agent services unchanged: %v; catalog index %d → %d",
		r.line, ms(r.histTook), r.histCount, r.agentSame(), r.before.catalogIndex, r.after.catalogIndex)

	// Memory, with the containers still running.
	if r.watcherMem, err = procMem(w.pid); err != nil {
		r.rssErr = err.Error()
	}
	kids := w.pluginPIDs()
	r.plugins = len(kids)
	for _, p := range kids {
		m, err := procMem(p)
		if err != nil {
			r.rssErr = err.Error()
			continue
		}
		r.pluginMem.add(m)
	}
	if len(kids) == 0 {
		r.rssErr = "no plugin process under the watcher"
	}
	progress("  RSS: watcher %s peak (%s now), plugin %s peak (%s now)", mib(r.watcherMem.hwm), mib(r.watcherMem.rss), mib(r.pluginMem.hwm), mib(r.pluginMem.rss))
	return r, nil
}
