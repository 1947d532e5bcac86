package watch_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
	"github.com/sdctl/sdctl/internal/watch"
	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/internal/watch/spec"
	"github.com/sdctl/sdctl/registry"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// faultyConn is a real file backend whose calls can be made to fail as an unreachable
// registry does, and whose writes are counted.
type faultyConn struct {
	registry.Registry
	// down fails every call, and holds back the change stream's events, as an unreachable
	// registry does.
	down atomic.Bool
	dead atomic.Bool
	// unwatchable makes Watch unsupported, as for a backend without a change stream.
	unwatchable atomic.Bool
	writes      atomic.Int64
	// tries counts Register calls, those that fail included.
	tries atomic.Int64
}

func (c *faultyConn) Exited() bool { return c.dead.Load() }

func (c *faultyConn) fail() error {
	if c.down.Load() {
		return fmt.Errorf("registry unreachable: %w", registry.ErrUnavailable)
	}
	return nil
}

func (c *faultyConn) Register(ctx context.Context, inst registry.Instance) error {
	c.tries.Add(1)
	if err := c.fail(); err != nil {
		return err
	}
	c.writes.Add(1)
	return c.Registry.Register(ctx, inst)
}

func (c *faultyConn) Deregister(ctx context.Context, id string) error {
	if err := c.fail(); err != nil {
		return err
	}
	c.writes.Add(1)
	return c.Registry.Deregister(ctx, id)
}

func (c *faultyConn) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Registry.Instances(ctx, q)
}

func (c *faultyConn) Services(ctx context.Context) ([]registry.Service, error) {
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Registry.Services(ctx)
}

func (c *faultyConn) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	if c.unwatchable.Load() {
		return fmt.Errorf("file registry without its change stream: %w", registry.ErrUnsupported)
	}
	return c.Registry.Watch(ctx, req, func(ev registry.Event) error {
		if c.down.Load() {
			return nil
		}
		return fn(ev)
	})
}

func (c *faultyConn) Close() error { return nil }

// harness runs a Watcher against the real engine and a file registry.
type harness struct {
	t      *testing.T
	cli    *client.Client
	image  string
	node   string
	path   string
	reg    *file.Backend
	conn   *faultyConn
	opens  atomic.Int64
	w      *watch.Watcher
	m      *watch.Metrics
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T) *harness {
	cli := dockertest.Client(t)
	h := &harness{t: t, cli: cli, image: dockertest.WebImage(t, cli), node: "node-" + strings.ReplaceAll(t.Name(), "/", "-")}
	h.path = filepath.Join(t.TempDir(), "registry.json")
	reg, err := file.Open(file.Options{Path: h.path})
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	h.conn = &faultyConn{Registry: reg}
	return h
}

// start runs a watcher; opts.Spec.Node defaults to the harness's node.
func (h *harness) start(opts watch.Options, docker watch.Docker) {
	h.t.Helper()
	if opts.Spec.Node == "" {
		opts.Spec.Node = h.node
	}
	if opts.Spec.DefaultIP == "" {
		opts.Spec.DefaultIP = "192.0.2.10"
	}
	h.logs = &testutil.SyncBuffer{}
	opts.Log = hclog.New(&hclog.LoggerOptions{Output: io.MultiWriter(h.logs, testWriter{h.t}), Level: hclog.Info})
	h.m = watch.NewMetrics()
	opts.Metrics = h.m
	opts.Labels = append(opts.Labels, "io.sdctl.test.watch="+h.node)
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 500 * time.Millisecond
	}
	if docker == nil {
		docker = h.cli
	}
	h.w = watch.New(docker, func(context.Context) (watch.Conn, error) {
		h.opens.Add(1)
		h.conn.dead.Store(false)
		return h.conn, nil
	}, opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.w.Connect(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.cancel = cancel
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		h.w.Run(ctx)
	}()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.w.Close()
	h.cancel = nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// owned lists the instances of the harness's node, by ID.
func (h *harness) owned() map[string]registry.Instance {
	h.t.Helper()
	ctx := context.Background()
	svcs, err := h.reg.Services(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]registry.Instance{}
	for _, s := range svcs {
		insts, err := h.reg.Instances(ctx, registry.Query{Name: s.Name})
		if err != nil {
			h.t.Fatal(err)
		}
		for _, inst := range insts {
			if inst.Meta[spec.MetaNode] == h.node {
				out[inst.ID] = inst
			}
		}
	}
	return out
}

// eventually polls cond for up to d.
func (h *harness) eventually(d time.Duration, what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %s; last state:\n%s", what, d, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitIDs waits until the node owns exactly ids.
func (h *harness) waitIDs(d time.Duration, ids ...string) map[string]registry.Instance {
	h.t.Helper()
	slices.Sort(ids)
	var got map[string]registry.Instance
	h.eventually(d, fmt.Sprintf("registry holds %v", ids), func() (bool, string) {
		got = h.owned()
		have := make([]string, 0, len(got))
		for id := range got {
			have = append(have, id)
		}
		slices.Sort(have)
		return slices.Equal(have, ids), strings.Join(have, "\n")
	})
	return got
}

func (h *harness) run(spec dockertest.Spec) dockertest.Container {
	h.t.Helper()
	return dockertest.Run(h.t, h.cli, spec.Marked(h.image, "io.sdctl.test.watch", h.node))
}

// runWeb runs n containers that publish port 3000 on loopback and waits until the node owns
// exactly their instances.
func (h *harness) runWeb(n int) []dockertest.Container {
	h.t.Helper()
	cs := make([]dockertest.Container, n)
	for i := range cs {
		cs[i] = h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	}
	h.waitIDs(15*time.Second, h.webIDs(cs)...)
	return cs
}

// webIDs are the instance IDs of containers from runWeb.
func (h *harness) webIDs(cs []dockertest.Container) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = h.id(c, "3000")
	}
	return ids
}

func (h *harness) id(c dockertest.Container, port string) string {
	return h.node + ":" + c.Name + ":" + port
}

func TestWatchRegistersAndRemovesContainers(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)

	plain := h.run(dockertest.Spec{Publish: []string{"3000/tcp"}})
	named := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_3000_NAME=service-web", "SERVICE_TAGS=env,v1", "SERVICE_REGION=eu"}, Labels: map[string]string{"SERVICE_TAGS": "label,v2"}})
	multi := h.run(dockertest.Spec{Cmd: []string{"-udp", "3000"}, Publish: []string{"127.0.0.1::3000", "127.0.0.1::3000/udp", "127.0.0.1::4000"}, Env: []string{"SERVICE_4000_NAME=admin"}})
	ignored := h.run(dockertest.Spec{Publish: []string{"3000/tcp"}, Labels: map[string]string{"SERVICE_IGNORE": "1"}})
	unpublished := h.run(dockertest.Spec{})

	got := h.waitIDs(15*time.Second,
		h.id(plain, "3000"), h.id(named, "3000"),
		h.id(multi, "3000"), h.id(multi, "3000:udp"), h.id(multi, "4000"))

	p := got[h.id(plain, "3000")]
	if p.Name != "service-web" || p.Address != "192.0.2.10" || fmt.Sprint(p.Port) != hostPort(t, plain) {
		t.Errorf("plain: got %s %s:%d, want service-web 192.0.2.10:%s (the image name, the default IP, the published port)", p.Name, p.Address, p.Port, hostPort(t, plain))
	}
	n := got[h.id(named, "3000")]
	if n.Name != "service-web" || n.Address != "127.0.0.1" || !slices.Equal(n.Tags, []string{"label", "v2"}) || n.Meta["region"] != "eu" {
		t.Errorf("named: got %+v; want the label's tags over the env's, the binding's address, meta region=eu", n)
	}
	if n.Meta[spec.MetaContainer] != named.ID || n.Meta[spec.MetaSpec] == "" {
		t.Errorf("named: ownership marks missing: %v", n.Meta)
	}
	if m := got[h.id(multi, "3000")]; m.Name != "service-web-3000" {
		t.Errorf("multi-port: got name %q, want service-web-3000", m.Name)
	}
	if u := got[h.id(multi, "3000:udp")]; u.Name != "service-web-3000" || !slices.Contains(u.Tags, "udp") {
		t.Errorf("udp: got %+v, want name service-web-3000 with tag udp", u)
	}
	if a := got[h.id(multi, "4000")]; a.Name != "admin" {
		t.Errorf("per-port name: got %q, want admin", a.Name)
	}
	// A skipped container registers nothing, so its log line is waited for on its own: it may
	// come a moment after the others' instances.
	for _, c := range []dockertest.Container{ignored, unpublished} {
		h.eventually(10*time.Second, "a log line for the skipped container "+c.Name, func() (bool, string) {
			return strings.Contains(h.logs.String(), "container="+c.Name), h.logs.String()
		})
	}

	named.Stop(t, time.Second)
	multi.Remove(t)
	h.waitIDs(10*time.Second, h.id(plain, "3000"))
	if !strings.Contains(h.logs.String(), "removed") {
		t.Error("no 'removed' log line")
	}
	named.Start(t)
	h.waitIDs(10*time.Second, h.id(plain, "3000"), h.id(named, "3000"))
}

func TestWatchInternalNetworksAndIPv6(t *testing.T) {
	h := newHarness(t)
	netA := dockertest.Network(t, h.cli, dockertest.NetworkOptions{})
	netB := dockertest.Network(t, h.cli, dockertest.NetworkOptions{IPv6: true})
	h.start(watch.Options{Spec: spec.Options{Internal: true}}, nil)

	onA := h.run(dockertest.Spec{Network: netA, Env: []string{"SERVICE_NAME=api"}})
	onB := h.run(dockertest.Spec{Network: netB, Env: []string{"SERVICE_NAME=api6"}})
	got := h.waitIDs(15*time.Second, h.id(onA, "3000"), h.id(onB, "3000"))

	ia := onA.Inspect(t)
	if want := ia.NetworkSettings.Networks[netA].IPAddress; got[h.id(onA, "3000")].Address != want || got[h.id(onA, "3000")].Port != 3000 {
		t.Errorf("internal: got %s:%d, want the container IP %s and the exposed port", got[h.id(onA, "3000")].Address, got[h.id(onA, "3000")].Port, want)
	}
	ib := onB.Inspect(t)
	if ep := ib.NetworkSettings.Networks[netB]; ep != nil && ep.GlobalIPv6Address != "" {
		if a := got[h.id(onB, "3000")].Address; a != ep.IPAddress && a != ep.GlobalIPv6Address {
			t.Errorf("dual-stack network: got %s, want %s or %s", a, ep.IPAddress, ep.GlobalIPv6Address)
		}
	}
}

func TestWatchNetworkChoice(t *testing.T) {
	h := newHarness(t)
	netA := dockertest.Network(t, h.cli, dockertest.NetworkOptions{})
	netB := dockertest.Network(t, h.cli, dockertest.NetworkOptions{})
	h.start(watch.Options{Spec: spec.Options{Internal: true, Network: netB}}, nil)

	c := h.run(dockertest.Spec{Network: netA, Env: []string{"SERVICE_NAME=multi"}})
	connectNetwork(t, h.cli, netB, c.ID)
	want := func() string { return c.Inspect(t).NetworkSettings.Networks[netB].IPAddress }
	h.eventually(15*time.Second, "instance on the --network address", func() (bool, string) {
		got := h.owned()[h.id(c, "3000")]
		return got.Address == want(), fmt.Sprintf("%+v", got)
	})

	// SERVICE_NETWORK on the container wins over --network.
	d := h.run(dockertest.Spec{Network: netA, Env: []string{"SERVICE_NAME=multi", "SERVICE_NETWORK=" + netA}})
	connectNetwork(t, h.cli, netB, d.ID)
	wantA := d.Inspect(t).NetworkSettings.Networks[netA].IPAddress
	h.eventually(15*time.Second, "instance on the SERVICE_NETWORK address", func() (bool, string) {
		got := h.owned()[h.id(d, "3000")]
		return got.Address == wantA, fmt.Sprintf("%+v", got)
	})
}

func connectNetwork(t *testing.T, cli *client.Client, network, id string) {
	t.Helper()
	if err := cli.NetworkConnect(context.Background(), network, id, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWatchDockerHealthBecomesInstanceHealth(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	c := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Healthcheck: dockertest.WebHealthcheck(200 * time.Millisecond)})
	id := h.id(c, "3000")
	health := func(want registry.Health) {
		t.Helper()
		h.eventually(20*time.Second, "health "+string(want), func() (bool, string) {
			got := h.owned()[id]
			return got.Health == want, fmt.Sprintf("%+v", got)
		})
	}
	health(registry.HealthPassing)
	flipHealth(t, c, "fail")
	health(registry.HealthCritical)
	insts, _ := h.reg.Instances(context.Background(), registry.Query{Name: "service-web", HealthyOnly: true})
	if len(insts) != 0 {
		t.Errorf("an unhealthy container still resolves: %v", insts)
	}
	flipHealth(t, c, "ok")
	health(registry.HealthPassing)
}

// flipHealth asks the service-web in c to report its health as state ("ok" or "fail").
func flipHealth(t *testing.T, c dockertest.Container, state string) {
	t.Helper()
	url := fmt.Sprintf("http://%s/healthz?state=%s", c.HostPort(t, "3000/tcp"), state)
	resp, err := httpPost(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp >= 300 {
		t.Fatalf("POST %s: status %d", url, resp)
	}
}

func TestWatchBadMetadataNeverBlocksOthers(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	bad := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{
		"SERVICE_CHECK_INTERVAL=abc", "SERVICE_CHECK_TCP=true", "SERVICE_8080_NAME=nope", "SERVICE_bad.key=1",
	}, Labels: map[string]string{"SERVICE_TAGS": ""}})
	badName := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=not a name!"}})
	good := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=good"}})
	h.waitIDs(15*time.Second, h.id(bad, "3000"), h.id(good, "3000"))
	logs := h.logs.String()
	for _, want := range []string{"SERVICE_CHECK_INTERVAL", "SERVICE_8080_NAME", "SERVICE_NAME"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line names %s:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, badName.Name) {
		t.Errorf("no log line names the container %s", badName.Name)
	}
	if n := metricSum(t, h.m, "sdctl_watch_metadata_skipped_total"); n < 3 {
		t.Errorf("metadata_skipped_total = %v, want at least 3", n)
	}
	// Problems are reported once per container, not on every reconcile.
	before := strings.Count(h.logs.String(), "SERVICE_CHECK_INTERVAL")
	if _, err := h.w.Reconcile(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if after := strings.Count(h.logs.String(), "SERVICE_CHECK_INTERVAL"); after != before {
		t.Errorf("the same problem was logged again by a reconcile (%d → %d lines)", before, after)
	}
}

func TestWatchReconcileWritesNothingWhenNothingChanged(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	web := h.runWeb(5)
	res, err := h.w.Reconcile(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 0 {
		t.Errorf("reconcile with nothing changed wrote %d times", res.Writes)
	}
	// Something changed behind the watcher's back: it is repaired, and only that. The
	// watcher may notice it by itself first (it follows the registry); either way, two writes.
	writes := func() float64 {
		return metricSum(t, h.m, "sdctl_watch_registrations_total") + metricSum(t, h.m, "sdctl_watch_deregistrations_total")
	}
	before := writes()
	if err := h.reg.Deregister(context.Background(), h.id(web[0], "3000")); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Register(context.Background(), registry.Instance{ID: h.node + ":gone:3000", Name: "service-web", Address: "10.0.0.1", Port: 1,
		Meta: map[string]string{spec.MetaNode: h.node, spec.MetaScope: "io.sdctl.test.watch=" + h.node,
			spec.MetaContainer: "0000000000000000000000000000000000000000000000000000000000000000"}}); err != nil {
		t.Fatal(err)
	}
	if _, err = h.w.Reconcile(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	h.waitIDs(5*time.Second, h.webIDs(web)...)
	h.eventually(5*time.Second, "two repair writes", func() (bool, string) {
		n := writes() - before
		return n == 2, fmt.Sprintf("%v writes", n)
	})
	if _, err = h.w.Reconcile(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if n := writes() - before; n != 2 {
		t.Errorf("repairing one loss and one stale entry took %v writes, want 2", n)
	}
}

func TestWatchRestartConvergesWithoutDuplicates(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	web := h.runWeb(2)
	a, b := web[0], web[1]
	h.stop() // like SIGKILL: nothing is deregistered

	b.Remove(t)
	c := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	h.start(watch.Options{}, nil)
	h.waitIDs(15*time.Second, h.id(a, "3000"), h.id(c, "3000"))
}

func TestWatchFastStopStartKeepsTheContainerRegistered(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	c := h.runWeb(1)[0]
	for range 5 {
		if err := h.cli.ContainerRestart(context.Background(), c.ID, containerStopNow()); err != nil {
			t.Fatal(err)
		}
	}
	// Each restart may publish another port: the registration converges on the current one.
	want := hostPort(t, c)
	h.eventually(10*time.Second, "registered on the current published port "+want, func() (bool, string) {
		got := h.owned()[h.id(c, "3000")]
		return fmt.Sprint(got.Port) == want, fmt.Sprint(got)
	})
	h.waitIDs(10*time.Second, h.id(c, "3000"))
}

func TestWatchRegistryOutageConverges(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	web := h.runWeb(2)
	keep, gone := web[0], web[1]

	h.conn.down.Store(true)
	gone.Remove(t)
	var started []string
	for range 4 {
		c := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
		started = append(started, h.id(c, "3000"))
	}
	h.eventually(10*time.Second, "a failed register logged while the registry is down", func() (bool, string) {
		return strings.Contains(h.logs.String(), "failed: register"), h.logs.String()
	})
	h.conn.down.Store(false)
	h.waitIDs(15*time.Second, append(started, h.id(keep, "3000"))...)
}

func TestWatchRestartsADeadBackend(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	a := h.runWeb(1)[0]
	opens := h.opens.Load()
	h.conn.dead.Store(true)
	h.eventually(10*time.Second, "backend reopened", func() (bool, string) {
		return h.opens.Load() > opens, fmt.Sprint(h.opens.Load())
	})
	b := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	h.waitIDs(15*time.Second, h.id(a, "3000"), h.id(b, "3000"))
	if n := metricSum(t, h.m, "sdctl_watch_plugin_restarts_total"); n < 1 {
		t.Errorf("plugin_restarts_total = %v", n)
	}
}

// While the engine is away the watcher tries again on its backoff schedule (0.1 s doubling),
// and once back it catches up on what it missed.
func TestWatchReconnectsToDocker(t *testing.T) {
	h := newHarness(t)
	proxy := dockertest.SocketProxy(t, "")
	clk := clock.NewFake(time.Now())
	h.start(watch.Options{Clock: clk}, proxy.Client(t))
	a := h.runWeb(1)[0]

	proxy.Cut()
	h.eventually(5*time.Second, "watcher notices the cut", func() (bool, string) {
		return h.w.Ready() != nil, fmt.Sprint(h.w.Ready())
	})
	a.Remove(t) // missed while disconnected
	b := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
	tries := func() []time.Duration { return announced(t, h.logs.String(), "docker event stream lost; reconnecting") }
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for i, d := range want {
		h.eventually(10*time.Second, fmt.Sprintf("reconnect %d announced", i+1), func() (bool, string) {
			return len(tries()) == i+1, h.logs.String()
		})
		if got := tries(); got[i] != d {
			t.Fatalf("reconnects announced %v, want %v", got, want[:i+1])
		}
		if i == len(want)-1 {
			proxy.Restore()
		}
		clk.Advance(d)
	}
	h.waitIDs(20*time.Second, h.id(b, "3000"))
	if got := tries(); len(got) != len(want) {
		t.Errorf("reconnects announced %v, want %v", got, want)
	}
	if n := metricValue(t, h.m, "sdctl_watch_reconciles_total", "docker-reconnect"); n != 1 {
		t.Errorf("reconciles_total{reason=docker-reconnect} = %v, want 1", n)
	}
}

func TestWatchDeregisterOnExitAndCleanup(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Entries Registrator left for this node, and one of another node.
	for _, id := range []string{h.node + ":old-container:80", h.node + ":old-container:53:udp", "other-node:old:80"} {
		if err := h.reg.Register(ctx, registry.Instance{ID: id, Name: "legacy", Address: "10.0.0.1", Port: 80}); err != nil {
			t.Fatal(err)
		}
	}
	h.start(watch.Options{Cleanup: true, DeregisterOnExit: true}, nil)
	h.runWeb(1)
	h.eventually(10*time.Second, "legacy entries of this node removed", func() (bool, string) {
		insts, _ := h.reg.Instances(ctx, registry.Query{Name: "legacy"})
		return len(insts) == 1 && insts[0].ID == "other-node:old:80", fmt.Sprint(insts)
	})
	h.stop()
	if got := h.owned(); len(got) != 0 {
		t.Errorf("after exit with DeregisterOnExit: %v still registered", got)
	}
}

func TestWatchMetricsAndHealthz(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	h.runWeb(1)
	srv := httptest.NewServer(h.m.Handler(h.w.Ready))
	defer srv.Close()
	_, body := testutil.HTTPGet(t, srv.URL+"/metrics")
	for _, want := range []string{
		"sdctl_watch_registrations_total 1", "sdctl_watch_instances 1", "sdctl_watch_docker_connected 1",
		`sdctl_watch_reconciles_total{reason="start"} 1`, "sdctl_watch_event_lag_seconds_count", "sdctl_watch_reconcile_duration_seconds_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	checkExposition(t, body)
	if _, got := testutil.HTTPGet(t, srv.URL+"/healthz"); strings.TrimSpace(got) != "ok" {
		t.Errorf("/healthz = %q", got)
	}
}

// hostPort is the host port the container's port 3000 is published on.
func hostPort(t *testing.T, c dockertest.Container) string {
	_, port, _ := strings.Cut(c.HostPort(t, "3000/tcp"), "]:")
	if port == "" {
		_, port, _ = strings.Cut(c.HostPort(t, "3000/tcp"), ":")
	}
	return port
}

func TestWatchScopedWatchersShareANode(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{Labels: []string{"group=a"}}, nil)
	a := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Labels: map[string]string{"group": "a"}})
	b := h.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Labels: map[string]string{"group": "b"}})
	h.waitIDs(15*time.Second, h.id(a, "3000"))

	// A second watcher of the same node for the other group.
	second := watch.New(h.cli, func(context.Context) (watch.Conn, error) { return h.conn, nil }, watch.Options{
		Spec:   spec.Options{Node: h.node, DefaultIP: "192.0.2.10"},
		Labels: []string{"io.sdctl.test.watch=" + h.node, "group=b"}, DeregisterOnExit: true,
		Log: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Name: "second"}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := second.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); second.Run(ctx) }()
	h.waitIDs(15*time.Second, h.id(a, "3000"), h.id(b, "3000"))

	// Neither reconcile touches the other's instance.
	for _, w := range []*watch.Watcher{h.w, second} {
		res, err := w.Reconcile(context.Background(), "test")
		if err != nil {
			t.Fatal(err)
		}
		if res.Writes != 0 {
			t.Errorf("a reconcile wrote %d times", res.Writes)
		}
	}
	h.waitIDs(time.Second, h.id(a, "3000"), h.id(b, "3000"))
	// The second one leaves with --deregister-on-exit: only its own instance goes.
	cancel()
	<-done
	h.waitIDs(5*time.Second, h.id(a, "3000"))
	if got := h.owned()[h.id(a, "3000")].Meta[spec.MetaScope]; got != "group=a,io.sdctl.test.watch="+h.node {
		t.Errorf("scope mark %q", got)
	}
}

// Host-network containers have no port bindings: their exposed ports register on the same
// number, at the host's address (Registrator's behaviour).
func TestWatchHostNetworkContainer(t *testing.T) {
	h := newHarness(t)
	h.start(watch.Options{}, nil)
	c := h.run(dockertest.Spec{Network: "host", Cmd: []string{"-listen", "127.0.0.1:0"}, Expose: []string{"3000", "3001"},
		Env: []string{"SERVICE_3000_NAME=hostnet", "SERVICE_3001_IGNORE=1"}})
	got := h.waitIDs(15*time.Second, h.id(c, "3000"))
	if inst := got[h.id(c, "3000")]; inst.Name != "hostnet" || inst.Address != "192.0.2.10" || inst.Port != 3000 {
		t.Errorf("host network: got %s %s:%d, want hostnet 192.0.2.10:3000", inst.Name, inst.Address, inst.Port)
	}
}
