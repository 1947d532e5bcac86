package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The Consul and etcd parts: sdctl against a real server the bench starts, next to the
// server's own clients (curl of its HTTP API, the consul CLI), on the same machine and data.

// webInstances is the size of the `web` service the resolve comparison reads.
const webInstances = 10

// backendCase is everything measured against one server.
type backendCase struct {
	kind  string // the --backend value: "consul" or "etcd"
	title string // "Consul", "etcd"
	srv   *server
	sc    *scenario
	web   []string // HOST:PORT of the web instances

	curl     string // path of curl; "" when there is none
	curlArgs []string
	cliArgs  []string // the consul CLI's arguments; nil for etcd
	verified string   // what the check before timing found

	compare []*series // sdctl, then curl and the CLI when there are
	sdctlS  *series   // compare's rows by command; curlS and cliS may be nil
	curlS   *series
	cliS    *series
	debug   *debugCase         // sdctl resolve with --log-level debug, through the RSS probe
	rss     map[string][]int64 // by compare label: peak RSS through the probe
	watch   *watchResult
	bulk    []*bulkRun
	writes  []*series // sdctl register, curl's, sdctl deregister, curl's
}

// sdctl is an sdctl invocation with --backend set.
func (b *backendCase) sdctl(ws *workspace, label string, args ...string) invocation {
	return ws.sdctlCmd(b.sc, label, append([]string{"--backend", b.kind}, args...)...)
}

// Labels of the compared commands; ADDR stands for the server's address, which changes from
// run to run.
// warmEnv keeps the backend warm between the commands of a measurement (the scenarios turn it
// off otherwise).
const warmEnv = "SDCTL_PLUGIN_IDLE_TIMEOUT=1m"

func (b *backendCase) sdctlLabel() string { return "`sdctl --backend " + b.kind + " resolve web`" }

func (b *backendCase) curlLabel() string {
	if b.kind == "consul" {
		return "`curl -s http://ADDR/v1/health/service/web?passing`"
	}
	return "`curl -s -X POST http://ADDR/v3/kv/range -d '{\"key\":\"" + b64("/services/web/") + "\",\"range_end\":\"" + b64("/services/web0") + "\"}'`"
}

func (b *backendCase) cliLabel() string { return "`consul catalog nodes -service=web`" }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// newBackendCase starts the server, points a scenario at it and registers the web instances
// with sdctl, then checks that sdctl, curl and the consul CLI all see them.
func newBackendCase(ctx context.Context, ws *workspace, kind, bin string, keep func(*server)) (*backendCase, error) {
	b := &backendCase{kind: kind}
	var err error
	switch kind {
	case "consul":
		b.title = "Consul"
		b.srv, err = startConsul(ctx, filepath.Join(ws.root, "consul"), bin)
	case "etcd":
		b.title = "etcd"
		b.srv, err = startEtcd(ctx, filepath.Join(ws.root, "etcd"), bin)
	default:
		return nil, fmt.Errorf("unknown backend %q", kind)
	}
	keep(b.srv)
	if err != nil {
		return nil, err
	}
	progress("  %s (%s) serving on %s after %s", kind, b.srv.version, b.srv.addr, b.srv.started.Round(time.Millisecond))
	if b.sc, err = ws.newScenario(kind); err != nil {
		return nil, err
	}
	switch kind {
	case "consul":
		b.sc.env = append(b.sc.env, "CONSUL_HTTP_ADDR="+b.srv.addr)
		b.curlArgs = []string{"-s", "http://" + b.srv.addr + "/v1/health/service/web?passing"}
		b.cliArgs = []string{"catalog", "nodes", "-service=web"}
	case "etcd":
		b.sc.env = append(b.sc.env, "ETCDCTL_ENDPOINTS="+b.srv.addr)
		body := fmt.Sprintf(`{"key":"%s","range_end":"%s"}`, b64("/services/web/"), b64("/services/web0"))
		b.curlArgs = []string{"-s", "-X", "POST", "http://" + b.srv.addr + "/v3/kv/range", "-d", body}
	}
	if p, err := exec.LookPath("curl"); err == nil {
		b.curl = p
	}
	for i := 1; i <= webInstances; i++ {
		addr := "127.0.0.1:" + itoa(3000+i)
		if _, err := b.sdctl(ws, "register", "register", "web", addr).mustRun(ctx); err != nil {
			return nil, err
		}
		b.web = append(b.web, addr)
	}
	return b, b.verify(ctx, ws)
}

// verify checks, before anything is timed, that every compared command finds the web
// instances: sdctl resolve and resolve --all, the HTTP answer curl gets, the consul CLI.
func (b *backendCase) verify(ctx context.Context, ws *workspace) error {
	one, err := b.sdctl(ws, "resolve", "resolve", "web").mustRun(ctx)
	if err != nil {
		return err
	}
	all, err := b.sdctl(ws, "resolve --all", "resolve", "web", "--all").mustRun(ctx)
	if err != nil {
		return err
	}
	listed := strings.Fields(string(all.stdout))
	slices.Sort(listed)
	want := slices.Sorted(slices.Values(b.web))
	if !slices.Equal(listed, want) {
		return fmt.Errorf("resolve web --all printed %q, want %q", listed, want)
	}
	picked := strings.TrimSpace(string(one.stdout))
	if !slices.Contains(want, picked) {
		return fmt.Errorf("resolve web printed %q, not one of the web instances", picked)
	}
	checks := []string{"`resolve web` → " + picked, "`resolve web --all` → " + plural(len(listed), "instance")}
	if b.curl != "" {
		r, err := b.curlInv().mustRun(ctx)
		if err != nil {
			return err
		}
		n, err := b.countHTTP(r.stdout)
		if err != nil {
			return fmt.Errorf("curl: %w", err)
		}
		if n != webInstances {
			return fmt.Errorf("curl: the answer holds %d instances, want %d", n, webInstances)
		}
		what := "health entries"
		if b.kind == "etcd" {
			what = "keys"
		}
		checks = append(checks, fmt.Sprintf("curl → %d %s (%s of JSON)", n, what, kib(len(r.stdout))))
	}
	if b.cliArgs != nil {
		r, err := b.cliInv().mustRun(ctx)
		if err != nil {
			return err
		}
		rows := strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
		if len(rows) != webInstances+1 || !strings.HasPrefix(rows[0], "Node") {
			return fmt.Errorf("consul catalog nodes -service=web printed %d lines, want a header and %d rows:\n%s", len(rows), webInstances, r.stdout)
		}
		checks = append(checks, fmt.Sprintf("`consul catalog nodes` → %d rows", len(rows)-1))
	}
	b.verified = strings.Join(checks, "; ")
	return nil
}

func kib(n int) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

// countHTTP counts the instances in the answer curl printed.
func (b *backendCase) countHTTP(body []byte) (int, error) {
	if b.kind == "consul" {
		var entries []json.RawMessage
		if err := json.Unmarshal(body, &entries); err != nil {
			return 0, err
		}
		return len(entries), nil
	}
	var rr rangeResponse
	if err := json.Unmarshal(body, &rr); err != nil {
		return 0, err
	}
	return len(rr.Kvs), nil
}

func (b *backendCase) curlInv() invocation {
	return invocation{label: b.curlLabel(), path: b.curl, args: b.curlArgs, sc: b.sc}
}

func (b *backendCase) cliInv() invocation {
	return invocation{label: b.cliLabel(), path: b.srv.bin, args: b.cliArgs, sc: b.sc}
}

// measureCompare times sdctl resolve, curl and the consul CLI, taking turns.
func (b *backendCase) measureCompare(ctx context.Context, ws *workspace, cfg *config) error {
	warm := b.sdctl(ws, b.sdctlLabel()+" (warm backend, the default)", "resolve", "web")
	warm.env = []string{warmEnv}
	invs := []invocation{warm}
	if b.curl != "" {
		invs = append(invs, b.curlInv())
	}
	if b.cliArgs != nil {
		invs = append(invs, b.cliInv())
	}
	invs = append(invs, b.sdctl(ws, "`sdctl --plugin-idle-timeout 0 --backend "+b.kind+" resolve web` (a backend process per command)", "resolve", "web"))
	var err error
	b.compare, err = timeInterleaved(ctx, invs, cfg.n, cfg.warmup)
	// The warm backend must not outlive the run.
	stop := b.sdctl(ws, "stop", "backend", "stop")
	stop.env = []string{warmEnv}
	if _, serr := stop.command(ctx).Output(); serr != nil && err == nil {
		err = fmt.Errorf("sdctl backend stop: %w", serr)
	}
	if err != nil {
		return err
	}
	b.sdctlS = b.compare[0]
	i := 1
	if b.curl != "" {
		b.curlS, i = b.compare[i], i+1
	}
	if b.cliArgs != nil {
		b.cliS = b.compare[i]
	}
	return nil
}

// measureDebug runs every compared command through the RSS probe, sdctl with --log-level
// debug for the plugin's own peak RSS and the phases of a resolve.
func (b *backendCase) measureDebug(ctx context.Context, ws *workspace, cfg *config) error {
	invs := []invocation{b.sdctl(ws, b.sdctlLabel(), "--log-level", "debug", "resolve", "web")}
	if b.curl != "" {
		invs = append(invs, b.curlInv())
	}
	if b.cliArgs != nil {
		invs = append(invs, b.cliInv())
	}
	b.debug = &debugCase{label: b.title, plugin: true}
	b.rss = map[string][]int64{}
	for round := -cfg.warmup; round < cfg.rssN; round++ {
		for i, inv := range invs {
			if err := ctx.Err(); err != nil {
				return err
			}
			inv.probe = true
			r := inv.run(ctx)
			if round < 0 {
				continue
			}
			if i == 0 {
				b.debug.add(&r)
				if r.ok() {
					b.rss[b.sdctlLabel()] = append(b.rss[b.sdctlLabel()], r.maxRSS)
				}
			} else if r.ok() {
				b.rss[inv.label] = append(b.rss[inv.label], r.maxRSS)
			}
		}
	}
	return nil
}

// measureWatch times deregistrations (and the registrations that put the instance back)
// through `sdctl resolve web --watch`.
func (b *backendCase) measureWatch(ctx context.Context, ws *workspace, cfg *config) error {
	var err error
	b.watch, err = watchLatency(ctx, ws, watchSpec{
		sc: b.sc, global: []string{"--backend", b.kind}, initial: b.web, changes: 2 * cfg.watchN, removeFirst: true,
	})
	return err
}

// bulkRun is the registration of many instances by one or several `sdctl register -f`
// processes started at once.
type bulkRun struct {
	service   string
	procs     int
	instances int
	ttl       string // in every entry, "" for none
	atOnce
	listed    int           // instances the server lists afterwards
	listedAt  time.Duration // from the start until the server listed all of them
	leased    int           // etcd: keys attached to a lease
	resolved  int           // what `sdctl resolve SERVICE --all` printed
	verifyErr string
}

func (r *bulkRun) ok() bool {
	return r.errors == 0 && r.verifyErr == "" && r.listed == r.instances && r.resolved == r.instances &&
		(r.ttl == "" || r.leased == r.instances)
}

// rate is instances per second of wall time.
func (r *bulkRun) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.instances) / r.wall.Seconds()
}

// measureBulk registers cfg.bulkN instances with one `register -f` process, then again with
// cfg.bulkProcs processes at once, each into a service of its own.
func (b *backendCase) measureBulk(ctx context.Context, ws *workspace, cfg *config) error {
	ttl := ""
	if b.kind == "etcd" {
		ttl = "30s" // one lease per instance
	}
	procs := []int{1}
	if cfg.bulkProcs > 1 {
		procs = append(procs, cfg.bulkProcs)
	}
	for i, p := range procs {
		run := &bulkRun{service: fmt.Sprintf("bulk%d", p), procs: p, instances: cfg.bulkN, ttl: ttl}
		if err := b.bulkRegister(ctx, ws, run, i+1); err != nil {
			return err
		}
		progress("  %s: %d instances by %d process(es) in %s (%.0f/s), %d errors, %d listed by the server",
			b.kind, run.instances, p, run.wall.Round(time.Millisecond), run.rate(), run.errors, run.listed)
		b.bulk = append(b.bulk, run)
		// Remove the batch, so that the next one starts from the same state: a Consul agent
		// registers more slowly the more services it holds.
		if err := b.removeService(run.service); err != nil {
			return fmt.Errorf("removing %s after the bulk registration: %w", run.service, err)
		}
	}
	return nil
}

// removeService deletes every instance of service directly through the server's API.
func (b *backendCase) removeService(service string) error {
	if b.kind == "consul" {
		var svcs map[string]struct{ Service string }
		if err := httpJSON("GET", "http://"+b.srv.addr+"/v1/agent/services", nil, &svcs); err != nil {
			return err
		}
		for id, s := range svcs {
			if s.Service != service {
				continue
			}
			if err := httpJSON("PUT", "http://"+b.srv.addr+"/v1/agent/service/deregister/"+url.PathEscape(id), nil, nil); err != nil {
				return err
			}
		}
	} else {
		body := fmt.Sprintf(`{"key":"%s","range_end":"%s"}`, b64("/services/"+service+"/"), b64("/services/"+service+"0"))
		if err := httpJSON("POST", "http://"+b.srv.addr+"/v3/kv/deleterange", []byte(body), nil); err != nil {
			return err
		}
	}
	if n, _, err := b.countService(service); err != nil || n != 0 {
		return fmt.Errorf("%d instances left (%v)", n, err)
	}
	return nil
}

func (b *backendCase) bulkRegister(ctx context.Context, ws *workspace, run *bulkRun, block int) error {
	type entry struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Port    int    `json:"port"`
		TTL     string `json:"ttl,omitempty"`
	}
	files := make([][]entry, run.procs)
	for i := range run.instances {
		k := i % run.procs
		files[k] = append(files[k], entry{Name: run.service, Address: fmt.Sprintf("10.%d.%d.%d", block, i>>8&0xff, i&0xff), Port: 3000, TTL: run.ttl})
	}
	invs := make([]invocation, run.procs)
	for k, entries := range files {
		data, err := json.Marshal(map[string]any{"instances": entries})
		if err != nil {
			return err
		}
		path := filepath.Join(b.sc.dir, fmt.Sprintf("%s-%d.json", run.service, k))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
		invs[k] = b.sdctl(ws, "register -f", "register", "-f", path)
	}

	if err := run.run(ctx, invs); err != nil {
		return err
	}

	// How soon the server lists them all: at once for etcd; Consul's agent copies its
	// registrations into the catalog in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, leased, err := b.countService(run.service)
		if err != nil {
			run.verifyErr = err.Error()
			break
		}
		run.listed, run.leased = n, leased
		if n >= run.instances || time.Now().After(deadline) {
			run.listedAt = time.Since(run.started)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, err := b.sdctl(ws, "resolve --all", "resolve", run.service, "--all").mustRun(ctx)
	if err != nil {
		if run.verifyErr == "" {
			run.verifyErr = err.Error()
		}
		return nil
	}
	run.resolved = len(strings.Fields(string(r.stdout)))
	return nil
}

// rangeResponse is the part of etcd's JSON range answer the bench reads.
type rangeResponse struct {
	Count string `json:"count"`
	Kvs   []struct {
		Key   string `json:"key"`
		Lease string `json:"lease"`
	} `json:"kvs"`
}

// countService asks the server directly how many instances of service it holds: passing
// health entries for Consul (what `resolve` reads), keys and keys with a lease for etcd.
func (b *backendCase) countService(service string) (instances, leased int, err error) {
	if b.kind == "consul" {
		var entries []json.RawMessage
		err := httpJSON("GET", "http://"+b.srv.addr+"/v1/health/service/"+service+"?passing", nil, &entries)
		return len(entries), 0, err
	}
	body := fmt.Sprintf(`{"key":"%s","range_end":"%s"}`, b64("/services/"+service+"/"), b64("/services/"+service+"0"))
	var rr rangeResponse
	if err := httpJSON("POST", "http://"+b.srv.addr+"/v3/kv/range", []byte(body), &rr); err != nil {
		return 0, 0, err
	}
	for _, kv := range rr.Kvs {
		if kv.Lease != "" && kv.Lease != "0" {
			leased++
		}
	}
	return len(rr.Kvs), leased, nil
}

// backendSteps are the parts of the run for one server; the last one stops it.
func backendSteps(ctx context.Context, ws *workspace, cfg *config, kind, bin string, keep func(*server), out **backendCase) []part {
	var b *backendCase
	title := map[string]string{"consul": "Consul", "etcd": "etcd"}[kind]
	steps := []part{
		{title + ": start the server, register web ×10, check", func() (err error) {
			b, err = newBackendCase(ctx, ws, kind, bin, keep)
			*out = b
			return err
		}},
		{title + ": timing resolve against its own clients", func() error { return b.measureCompare(ctx, ws, cfg) }},
		{title + ": peak RSS and phases (debug runs)", func() error { return b.measureDebug(ctx, ws, cfg) }},
		{title + ": timing register and deregister against curl", func() error { return b.measureWrites(ctx, ws, cfg) }},
	}
	if cfg.watchN > 0 {
		steps = append(steps, part{title + ": watch latency", func() error { return b.measureWatch(ctx, ws, cfg) }})
	}
	if cfg.bulkN > 0 {
		steps = append(steps, part{title + ": " + thousands(cfg.bulkN) + " registrations", func() error { return b.measureBulk(ctx, ws, cfg) }})
	}
	// The last part stops the server (which must still be running) when it is done.
	last := steps[len(steps)-1].fn
	steps[len(steps)-1].fn = func() error {
		if err := last(); err != nil {
			return err
		}
		if !b.srv.running() {
			return fmt.Errorf("%s exited during the run\n%s", kind, b.srv.LogTail(30))
		}
		b.srv.Stop()
		return nil
	}
	return steps
}
