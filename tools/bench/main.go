// Command bench measures a built sdctl binary end to end and prints a Markdown report.
//
// It runs the real executable as a user would, one process per command, and measures:
//
//   - `sdctl resolve web` wall time against file registries of 10 and 10,000 instances;
//   - the cost of starting the backend plugin: `/bin/true` vs `sdctl version` (no plugin) vs
//     `sdctl resolve web` vs `sdctl --plugin-mtls resolve web`, and where a resolve spends its
//     time, from the host's debug log;
//   - peak RSS, from wait4's rusage (through a probe process, see probe.go) and from the
//     plugin's own max_rss_kib debug line;
//   - many `sdctl register` processes started at once against one registry file;
//   - 10,000 instances registered with one `sdctl register -f` on the file backend;
//   - how soon `sdctl resolve web --watch` prints a change;
//   - the consul and etcd backends against a Consul agent and an etcd member the bench starts
//     on loopback (-consul=false and -etcd=false skip them): `sdctl --backend B resolve web`
//     next to curl of the server's HTTP API (and the consul CLI), deregister → `resolve
//     --watch` latency, and 1,000 registrations with `register -f`;
//   - `sdctl watch` against the Docker engine, with a Consul agent of its own (-docker=false
//     skips it): how soon a container's start and stop show in Consul, many containers started
//     at once, a periodic reconcile with hundreds of containers and nothing changed, and the
//     watcher's RSS then (see docker.go).
//
// Every scenario gets its own scratch HOME, XDG directories, TMPDIR and SDCTL_FILE_PATH under
// one temporary directory, which is removed at the end. The binary is copied there first, so
// a rebuild during the run cannot mix two builds. The servers keep their data in that
// directory too and are stopped at the end of their part, or on an error or Ctrl-C, as are
// the containers and the image the Docker part creates.
//
// Usage (what `make bench` runs):
//
//	go run ./tools/bench -sdctl bin/sdctl
//
// The report goes to stdout and progress to stderr. With -write FILE the report also replaces
// the part of FILE between the lines "<!-- bench:begin -->" and "<!-- bench:end -->".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
)

// config holds the command-line flags.
type config struct {
	sdctl     string
	n         int
	startN    int
	rssN      int
	warmup    int
	conc      []int
	concRuns  int
	watchN    int
	consul    bool
	etcd      bool
	consulBin string
	etcdBin   string
	bulkN     int
	bulkProcs int
	// fileBulkN instances registered with one `register -f` on the file backend, fileBulkRuns
	// times.
	fileBulkN    int
	fileBulkRuns int
	docker       bool
	// The Docker part's sizes; 0 skips a measurement.
	watchContainers int
	watchBurst      int
	watchReconcile  int
	watchRecovery   int
	dir             string
	write           string
	cmdline         string
	startedAt       time.Time
}

func main() {
	if os.Getenv(probeEnv) != "" {
		os.Exit(probeMain(os.Args[1:]))
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{startedAt: time.Now()}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.sdctl, "sdctl", "bin/sdctl", "the sdctl binary to measure")
	fs.IntVar(&cfg.n, "n", 200, "timed runs of each `sdctl resolve web` case")
	fs.IntVar(&cfg.startN, "start-n", 100, "timed runs of each command in the plugin start comparison")
	fs.IntVar(&cfg.rssN, "rss-n", 30, "runs with --log-level debug per case, for peak RSS and the phase breakdown")
	fs.IntVar(&cfg.warmup, "warmup", 5, "untimed runs of each case before timing")
	conc := fs.String("conc", "50,200", "comma-separated numbers of concurrent `sdctl register` processes")
	fs.IntVar(&cfg.concRuns, "conc-runs", 3, "repetitions of each concurrent register test, each on a fresh registry")
	fs.IntVar(&cfg.watchN, "watch-n", 30, "changes timed through `resolve --watch` (0 skips the test)")
	fs.BoolVar(&cfg.consul, "consul", true, "also measure the consul backend against a Consul agent the bench starts")
	fs.BoolVar(&cfg.etcd, "etcd", true, "also measure the etcd backend against an etcd member the bench starts")
	fs.StringVar(&cfg.consulBin, "consul-bin", "", "Consul binary (default $SDCTL_CONSUL_BIN, else what scripts/consul-bin.sh prints)")
	fs.StringVar(&cfg.etcdBin, "etcd-bin", "", "etcd binary (default $SDCTL_ETCD_BIN, else what scripts/etcd-bin.sh prints)")
	fs.IntVar(&cfg.fileBulkN, "file-bulk-n", 10000, "instances registered with one `register -f` on the file backend (0 skips the test)")
	fs.IntVar(&cfg.fileBulkRuns, "file-bulk-runs", 5, "runs of the file backend's `register -f` test")
	fs.IntVar(&cfg.bulkN, "bulk-n", 1000, "instances registered with `register -f` per Consul and etcd bulk test (0 skips them)")
	fs.IntVar(&cfg.bulkProcs, "bulk-procs", 10, "concurrent `register -f` processes sharing the second bulk test (1: only the single-process one)")
	fs.BoolVar(&cfg.docker, "docker", true, "also measure `sdctl watch` against the Docker engine and a Consul agent the bench starts")
	fs.IntVar(&cfg.watchContainers, "watch-containers", 50, "containers started and stopped one at a time for `sdctl watch` (0 skips the test)")
	fs.IntVar(&cfg.watchBurst, "watch-burst", 100, "containers started at once for `sdctl watch` (0 skips the test)")
	fs.IntVar(&cfg.watchReconcile, "watch-reconcile", 500, "containers running during an `sdctl watch` resync reconcile and its RSS reading (0 skips the test)")
	fs.IntVar(&cfg.watchRecovery, "watch-recovery", 50, "containers running when the bench measures `sdctl watch`'s idle request rate and restarts Consul empty (0 skips the test)")
	fs.StringVar(&cfg.dir, "dir", "", "parent of the scratch directory (default $TMPDIR or /tmp)")
	fs.StringVar(&cfg.write, "write", "", "also put the report between the bench markers of this Markdown file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*conc, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("-conc: %q is not a positive number", s)
		}
		cfg.conc = append(cfg.conc, v)
	}
	for name, v := range map[string]int{"-n": cfg.n, "-start-n": cfg.startN, "-rss-n": cfg.rssN, "-conc-runs": cfg.concRuns} {
		if v < 1 {
			return nil, fmt.Errorf("%s must be at least 1", name)
		}
	}
	if cfg.warmup < 0 || cfg.watchN < 0 || cfg.bulkN < 0 {
		return nil, errors.New("-warmup, -watch-n and -bulk-n must not be negative")
	}
	if cfg.watchContainers < 0 || cfg.watchBurst < 0 || cfg.watchReconcile < 0 || cfg.watchRecovery < 0 {
		return nil, errors.New("-watch-containers, -watch-burst, -watch-reconcile and -watch-recovery must not be negative")
	}
	if cfg.watchContainers == 0 && cfg.watchBurst == 0 && cfg.watchReconcile == 0 && cfg.watchRecovery == 0 {
		cfg.docker = false
	}
	if cfg.bulkProcs < 1 || cfg.bulkN > 0 && cfg.bulkProcs > cfg.bulkN {
		return nil, errors.New("-bulk-procs must be between 1 and -bulk-n")
	}
	cfg.cmdline = commandLine(args)
	return cfg, nil
}

// commandLine reconstructs how the program was invoked, for the report.
func commandLine(args []string) string {
	prog := filepath.Base(os.Args[0])
	if strings.Contains(os.Args[0], "go-build") {
		prog = "go run ./tools/bench" // a binary built by `go run`
	}
	parts := []string{prog}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// part is one stage of the run.
type part struct {
	name string
	fn   func() error
}

// run performs every measurement and prints the report.
func run(ctx context.Context, cfg *config) error {
	if cfg.write != "" {
		// Fail before the run, not after it.
		if err := writeBetweenMarkers(cfg.write, ""); err != nil && !errors.Is(err, errNoChange) {
			return err
		}
	}
	var dk *dockerPart
	if cfg.docker {
		var err error
		if dk, err = connectDocker(ctx); err != nil {
			return fmt.Errorf("docker: %w\n(start the Docker engine, or point DOCKER_HOST at one; or pass -docker=false to skip the `sdctl watch` part)", err)
		}
	}
	// Deferred here for the returns before the servers' deferred stop, and again after it: the
	// watcher, containers and image of the Docker part go before its Consul agent.
	closeDocker := sync.OnceFunc(dk.close)
	defer closeDocker()
	// Find (or build) the servers first, so that a missing one fails the run at once.
	var consulBin, etcdBin string
	if cfg.consul || cfg.docker {
		b, err := serverBinary(cfg.consulBin, harness.Consul)
		if err != nil {
			return fmt.Errorf("consul binary: %w (run `make consul`, or pass -consul=false -docker=false)", err)
		}
		consulBin = b
	}
	if cfg.etcd {
		b, err := serverBinary(cfg.etcdBin, harness.Etcd)
		if err != nil {
			return fmt.Errorf("etcd binary: %w (run `make etcd`, or pass -etcd=false)", err)
		}
		etcdBin = b
	}
	ws, err := newWorkspace(cfg.sdctl, cfg.dir)
	if err != nil {
		return err
	}
	defer ws.remove()
	// Servers are stopped before the scratch directory holding their data is removed, also
	// after an error or Ctrl-C.
	var started []*server
	defer func() {
		for _, s := range started {
			s.Stop()
		}
	}()
	keep := func(s *server) { started = append(started, s) }
	defer closeDocker()

	rep := &report{cfg: cfg}
	cpuStart := readCPU()
	rep.machine = gatherMachine(ctx, ws)

	steps := []part{
		{"seeding and checking registries", func() (err error) { rep.registries, err = prepareRegistries(ctx, ws); return err }},
		{"timing resolve", func() (err error) { rep.resolve, err = measureResolve(ctx, ws, rep.registries, cfg); return err }},
		{"timing resolve with a warm file backend against a Go hello-world", func() (err error) {
			rep.warmFile, err = measureWarmFile(ctx, ws, rep.registries, cfg)
			return err
		}},
		{"timing what linking costs", func() (err error) {
			rep.linkCost, err = measureLinkCost(ctx, ws, rep.registries[0].sc, cfg)
			return err
		}},
		{"timing the plugin start", func() (err error) { rep.start, err = measureStart(ctx, ws, rep.registries[0], cfg); return err }},
		{"peak RSS and phases (debug runs)", func() (err error) {
			if rep.floor, err = measureProbeFloor(ctx, ws, rep.registries[0].sc, cfg); err != nil {
				return err
			}
			rep.debug, err = measureDebugRuns(ctx, ws, rep.registries, cfg)
			return err
		}},
		{"package initialisation", func() (err error) { rep.inits, err = measureInit(ctx, ws, rep.registries[0], cfg); return err }},
		{"concurrent registers", func() (err error) { rep.conc, err = measureConcurrent(ctx, ws, cfg); return err }},
	}
	if cfg.fileBulkN > 0 && cfg.fileBulkRuns > 0 {
		steps = append(steps, part{"file bulk register", func() (err error) { rep.fileBulk, err = measureFileBulk(ctx, ws, cfg); return err }})
	}
	if cfg.watchN > 0 {
		steps = append(steps, part{"watch latency", func() (err error) { rep.watch, err = measureWatch(ctx, ws, cfg); return err }})
	}
	if cfg.consul {
		steps = append(steps, backendSteps(ctx, ws, cfg, "consul", consulBin, keep, &rep.consul)...)
	}
	if cfg.etcd {
		steps = append(steps, backendSteps(ctx, ws, cfg, "etcd", etcdBin, keep, &rep.etcd)...)
	}
	if cfg.docker {
		steps = append(steps, dockerSteps(ctx, ws, cfg, dk, consulBin, keep, &rep.docker)...)
	}
	for _, s := range steps {
		t, cpu := time.Now(), readCPU()
		progress("%s ...", s.name)
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		rep.parts = append(rep.parts, partUse{name: s.name, elapsed: time.Since(t), cpu: cpuSince(cpu)})
		progress("%s done in %s", s.name, time.Since(t).Round(time.Millisecond))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	rep.machine.loadEnd = readLoadavg()
	rep.machine.cpuUse = cpuSince(cpuStart)
	rep.elapsed = time.Since(cfg.startedAt)

	text := rep.markdown()
	fmt.Print(text)
	if cfg.write != "" {
		if err := writeBetweenMarkers(cfg.write, text); err != nil {
			return err
		}
		progress("updated %s", cfg.write)
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
