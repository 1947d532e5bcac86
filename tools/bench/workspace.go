package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workspace is the scratch directory of one benchmark run.
type workspace struct {
	root   string
	sdctl  string // the copy of the binary that is run
	source string // the binary as given on the command line
	sha256 string
	true   string // the process-start baseline
	n      int    // scenarios created so far
}

func newWorkspace(sdctl, parent string) (*workspace, error) {
	src, err := filepath.Abs(sdctl)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(parent, "sdctl-bench-")
	if err != nil {
		return nil, err
	}
	ws := &workspace{root: root, source: src, sdctl: filepath.Join(root, "bin", "sdctl")}
	if err := ws.copyBinary(); err != nil {
		ws.remove()
		return nil, err
	}
	ws.true = "/bin/true"
	if _, err := os.Stat(ws.true); err != nil {
		if ws.true, err = exec.LookPath("true"); err != nil {
			ws.remove()
			return nil, fmt.Errorf("no /bin/true for the baseline: %w", err)
		}
	}
	return ws, nil
}

// bundledBackends are the executables that ship beside sdctl; sdctl runs them from its own
// directory, so they are copied with it when they are there (an older sdctl serves consul and
// etcd itself and runs watch itself, and has none).
var bundledBackends = []string{"sdctl-backend-consul", "sdctl-backend-etcd", "sdctl-watch", "sdctl-plugin-host"}

// copyBinary copies the binary, and the bundled backends beside it, into the workspace (the
// plugin re-executes that copy).
func (ws *workspace) copyBinary() error {
	if err := os.MkdirAll(filepath.Dir(ws.sdctl), 0o755); err != nil {
		return err
	}
	sum, err := copyExecutable(ws.source, ws.sdctl)
	if err != nil {
		return fmt.Errorf("sdctl binary: %w (run `make build` first)", err)
	}
	ws.sha256 = sum
	for _, name := range bundledBackends {
		src := filepath.Join(filepath.Dir(ws.source), name)
		if _, err := os.Stat(src); os.IsNotExist(err) {
			continue
		}
		if _, err := copyExecutable(src, filepath.Join(filepath.Dir(ws.sdctl), name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// copyExecutable copies src to dst (mode 0755) and returns src's SHA-256.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

func (ws *workspace) remove() {
	if err := os.RemoveAll(ws.root); err != nil {
		progress("could not remove %s: %v", ws.root, err)
	}
}

// scenario is an isolated environment: its own HOME, XDG directories, TMPDIR (where the
// plugin's socket directory goes) and registry file.
type scenario struct {
	name     string
	dir      string
	registry string
	env      []string
}

func (ws *workspace) newScenario(name string) (*scenario, error) {
	ws.n++
	dir := filepath.Join(ws.root, fmt.Sprintf("s%02d-%s", ws.n, name))
	sc := &scenario{name: name, dir: dir, registry: filepath.Join(dir, "data", "sdctl", "registry.json")}
	vars := map[string]string{
		"HOME":            filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"XDG_DATA_HOME":   filepath.Join(dir, "data"),
		"XDG_STATE_HOME":  filepath.Join(dir, "state"),
		"XDG_CACHE_HOME":  filepath.Join(dir, "cache"),
		"TMPDIR":          filepath.Join(dir, "tmp"),
	}
	for _, d := range vars {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(sc.registry), 0o700); err != nil {
		return nil, err
	}
	// Nothing from the caller's environment may configure sdctl, Consul's or etcd's clients
	// (the bench sets CONSUL_HTTP_ADDR and ETCDCTL_ENDPOINTS itself), or send loopback
	// requests through a proxy.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := vars[k]; ours || strings.HasPrefix(k, "SDCTL_") || strings.HasPrefix(k, "XDG_") ||
			strings.HasPrefix(k, "CONSUL_") || strings.HasPrefix(k, "ETCDCTL_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		sc.env = append(sc.env, kv)
	}
	for k, v := range vars {
		sc.env = append(sc.env, k+"="+v)
	}
	// One backend process per command unless a measurement asks for a warm one (warmEnv).
	sc.env = append(sc.env, "SDCTL_FILE_PATH="+sc.registry, "SDCTL_PLUGIN_IDLE_TIMEOUT=0")
	slices.Sort(sc.env)
	return sc, nil
}

// result is one finished process.
type result struct {
	start    time.Time
	wall     time.Duration // from just before fork to wait4 returning
	err      error         // failed start, non-zero exit or signal
	stdout   []byte
	stderr   []byte
	firstOut time.Time // when the first stdout bytes arrived
	// maxRSS is wait4's ru_maxrss in KiB: the largest peak of the process and any descendant
	// it waited for.
	maxRSS int64
	// cpu is user plus system time, including waited-for descendants.
	cpu time.Duration
}

func (r *result) ok() bool { return r.err == nil }

// failure describes a failed run in one line.
func (r *result) failure() string {
	msg := strings.TrimSpace(string(r.stderr))
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		return r.err.Error()
	}
	return r.err.Error() + ": " + msg
}

// invocation is a command to run in a scenario.
type invocation struct {
	label string
	path  string
	args  []string
	sc    *scenario
	env   []string // added to the scenario's environment
	// probe runs the command through the RSS probe (see probe.go): maxRSS, cpu, start and
	// wall then describe the command alone, and wall excludes the probe's own start-up.
	probe bool
}

func (ws *workspace) sdctlCmd(sc *scenario, label string, args ...string) invocation {
	return invocation{label: label, path: ws.sdctl, args: args, sc: sc}
}

// run starts inv, waits for it and measures it.
func (inv invocation) run(ctx context.Context) result {
	cmd := inv.command(ctx)
	out := &stampWriter{}
	var errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errBuf
	var r result
	var reportR, reportW *os.File
	if inv.probe {
		if reportR, reportW, r.err = os.Pipe(); r.err != nil {
			return r
		}
		defer reportR.Close()
		cmd.ExtraFiles = []*os.File{reportW}
	}
	r.start = time.Now()
	r.err = cmd.Start()
	if reportW != nil {
		reportW.Close()
	}
	if r.err == nil {
		r.err = cmd.Wait()
	}
	r.wall = time.Since(r.start)
	r.stdout, r.stderr, r.firstOut = out.buf.Bytes(), errBuf.Bytes(), out.first
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if inv.probe && cmd.ProcessState != nil {
		p, err := readProbeReport(reportR)
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return r
		}
		r.start, r.wall, r.maxRSS, r.cpu = p.start, p.end.Sub(p.start), p.maxRSS, p.cpu
	}
	return r
}

func (inv invocation) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, inv.path, inv.args...)
	cmd.Env = append(slices.Clip(inv.sc.env), inv.env...)
	if inv.probe {
		cmd = exec.CommandContext(ctx, probePath, append([]string{inv.path}, inv.args...)...)
		cmd.Env = append(slices.Clip(inv.sc.env), append(slices.Clip(inv.env), probeEnv+"=1")...)
	}
	cmd.Dir = inv.sc.dir // so that no ./sdctl.yaml is picked up
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// mustRun runs inv and turns a failure into an error.
func (inv invocation) mustRun(ctx context.Context) (result, error) {
	r := inv.run(ctx)
	if !r.ok() {
		return r, fmt.Errorf("%s %s: %s", filepath.Base(inv.path), strings.Join(inv.args, " "), r.failure())
	}
	return r, nil
}

// atOnce is processes started at the same moment, and how they went.
type atOnce struct {
	started   time.Time     // the moment they were released
	wall      time.Duration // first start to last exit
	perProc   []time.Duration
	cpu       time.Duration // user+sys of every process, plugins included
	errors    int
	errSample []string // distinct error messages, a few
}

// run starts every invocation at the same moment (each from a goroutine of its own, all
// released together) and waits for all of them.
func (a *atOnce) run(ctx context.Context, invs []invocation) error {
	results := make([]result, len(invs))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(len(invs))
	done.Add(len(invs))
	for i, inv := range invs {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			results[i] = inv.run(ctx)
		}()
	}
	ready.Wait()
	a.started = time.Now()
	close(start)
	done.Wait()
	a.wall = time.Since(a.started)
	if err := ctx.Err(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range results {
		a.perProc = append(a.perProc, r.wall)
		a.cpu += r.cpu
		if !r.ok() {
			a.errors++
			if msg := r.failure(); !seen[msg] && len(a.errSample) < 3 {
				seen[msg] = true
				a.errSample = append(a.errSample, msg)
			}
		}
	}
	return nil
}

// stampWriter collects output and remembers when the first bytes came.
type stampWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Time
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() && len(p) > 0 {
		w.first = time.Now()
	}
	return w.buf.Write(p)
}

// seedRecord is one instance in the file registry document, with the fields in the order
// sdctl writes them.
type seedRecord struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// seedRecords makes services*perService instances. The first service is "web", the others
// svc0001, svc0002 and so on; every instance has its own 10.x.y.z address on port 3000.
func seedRecords(services, perService int) []seedRecord {
	recs := make([]seedRecord, 0, services*perService)
	k := 0
	for s := 0; s < services; s++ {
		name := "web"
		if s > 0 {
			name = fmt.Sprintf("svc%04d", s)
		}
		for i := 0; i < perService; i++ {
			k++
			addr := fmt.Sprintf("10.%d.%d.%d", k>>16&0xff, k>>8&0xff, k&0xff)
			recs = append(recs, seedRecord{ID: name + "-" + addr + "-3000", Name: name, Address: addr, Port: 3000})
		}
	}
	return recs
}

// writeRegistry writes the document the way sdctl does: instances sorted by ID, one per line.
func writeRegistry(path string, recs []seedRecord) error {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b seedRecord) int { return strings.Compare(a.ID, b.ID) })
	var b bytes.Buffer
	b.WriteString("{\n  \"format\": \"sdctl-file-registry/1\",\n  \"revision\": 1,\n  \"instances\": [")
	for i, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(line)
	}
	if len(recs) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("]\n}\n")
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// registryFile is what the bench reads back from a registry document.
type registryFile struct {
	Format    string `json:"format"`
	Revision  uint64 `json:"revision"`
	Instances []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"instances"`
}

func readRegistry(path string) (*registryFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc registryFile
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &doc, nil
}

// catalogEntry is one line of `sdctl catalog -o json`.
type catalogEntry struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	Passing   int    `json:"passing"`
}

// catalog runs `sdctl catalog -o json` and returns the number of services and instances.
func (ws *workspace) catalog(ctx context.Context, sc *scenario) (services, instances int, err error) {
	r, err := ws.sdctlCmd(sc, "catalog", "catalog", "-o", "json").mustRun(ctx)
	if err != nil {
		return 0, 0, err
	}
	var entries []catalogEntry
	if err := json.Unmarshal(r.stdout, &entries); err != nil {
		return 0, 0, fmt.Errorf("catalog -o json: %w", err)
	}
	for _, e := range entries {
		instances += e.Instances
	}
	return len(entries), instances, nil
}

// fileSize is the size of path in bytes, or -1.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func itoa(n int) string { return strconv.Itoa(n) }

// runsCell is the Runs cell of a table: the runs measured, and how many failed besides, if any.
func runsCell(n, failures int) string {
	if failures > 0 {
		return fmt.Sprintf("%d (+%d failed)", n, failures)
	}
	return itoa(n)
}

// plural formats a count with thousands separators and the noun in the right number.
func plural(n int, noun string) string {
	if n != 1 {
		noun += "s"
	}
	return thousands(n) + " " + noun
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
