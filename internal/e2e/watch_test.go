package e2e

// `sdctl watch` as users run it: the built binary with its backend plugin subprocess, the real
// Docker engine, and real Consul and etcd servers. Containers come from the service-web test
// image (internal/testutil/dockertest); each test scopes its watcher to its own containers with
// --label, since other test packages start containers on the same engine at the same time.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
)

type watchEnv struct {
	t     *testing.T
	cli   *client.Client
	image string
	label string
	node  string
}

func newWatchEnv(t *testing.T) *watchEnv {
	cli := dockertest.Client(t)
	return &watchEnv{t: t, cli: cli, image: dockertest.WebImage(t, cli),
		label: "io.sdctl.test.e2e=" + t.Name(), node: "e2e-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")}
}

func (w *watchEnv) run(spec dockertest.Spec) dockertest.Container {
	w.t.Helper()
	k, v, _ := strings.Cut(w.label, "=")
	return dockertest.Run(w.t, w.cli, spec.Marked(w.image, k, v))
}

// watchArgs are the flags every watcher of this test uses.
func (w *watchEnv) watchArgs(extra ...string) []string {
	return append([]string{"watch", "--label", w.label, "--node-id", w.node}, extra...)
}

// start runs sdctl watch; its log is shown when the test fails.
func (w *watchEnv) start(env []string, args ...string) *proc {
	w.t.Helper()
	p := startSdctl(w.t, env, args...)
	w.t.Cleanup(func() {
		if w.t.Failed() {
			w.t.Logf("%s stderr:\n%s", p, p.stderr.String())
		}
	})
	return p
}

func (w *watchEnv) id(c dockertest.Container, port string) string {
	return w.node + ":" + c.Name + ":" + port
}

// consulOwned lists the service IDs the node has on the agent, with their health.
func consulOwned(t *testing.T, a *consultest.Agent, node string) (map[string]string, error) {
	var services map[string]struct {
		ID   string
		Meta map[string]string
	}
	if err := consulGet(a, "/v1/agent/services", &services); err != nil {
		return nil, err
	}
	var checks map[string]struct {
		ServiceID string
		Status    string
	}
	if err := consulGet(a, "/v1/agent/checks", &checks); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for id, s := range services {
		if s.Meta["sdctl-node"] == node {
			out[id] = "passing"
		}
	}
	for _, c := range checks {
		if _, ok := out[c.ServiceID]; ok && c.Status != "passing" {
			out[c.ServiceID] = c.Status
		}
	}
	return out, nil
}

func waitConsulIDs(t *testing.T, a *consultest.Agent, node string, timeout time.Duration, ids ...string) {
	t.Helper()
	slices.Sort(ids)
	eventually(t, timeout, func() error {
		got, err := consulOwned(t, a, node)
		if err != nil {
			return err
		}
		have := make([]string, 0, len(got))
		for id := range got {
			have = append(have, id)
		}
		slices.Sort(have)
		if !slices.Equal(have, ids) {
			return fmt.Errorf("consul has %v, want %v", have, ids)
		}
		return nil
	})
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWatchConsul follows containers into a real Consul agent through the built binary: the
// metadata variants, a Consul-run HTTP check, Docker health, SIGKILL and restart of the
// watcher, a killed backend plugin, /metrics.
func TestWatchConsul(t *testing.T) {
	w := newWatchEnv(t)
	a := consultest.StartDev(t)
	env := serverEnv(t)
	listen := freeAddr(t)
	args := w.watchArgs("--listen", listen, "--resync", "30s", "consul://"+a.HTTPAddr)
	p := w.start(env, args...)

	web := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{
		"SERVICE_3000_NAME=service-web", "SERVICE_TAGS=v1", "SERVICE_CHECK_HTTP=/healthz", "SERVICE_CHECK_INTERVAL=1s", "SERVICE_OWNER=team-a",
	}})
	healthy := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=with-docker-health"},
		Healthcheck: dockertest.WebHealthcheck(300 * time.Millisecond)})
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(web, "3000"), w.id(healthy, "3000"))

	// The HTTP check runs in Consul against the registered address, and passes.
	eventually(t, 20*time.Second, func() error {
		var entries []struct {
			Service struct {
				ID, Address string
				Port        int
				Tags        []string
				Meta        map[string]string
			}
		}
		if err := consulGet(a, "/v1/health/service/service-web?passing", &entries); err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d passing service-web entries", len(entries))
		}
		s := entries[0].Service
		if s.Address != "127.0.0.1" || fmt.Sprint(s.Port) != portOf(web.HostPort(t, "3000")) || !slices.Equal(s.Tags, []string{"v1"}) || s.Meta["owner"] != "team-a" {
			return fmt.Errorf("registered %+v", s)
		}
		return nil
	})
	out := mustRun(t, withEnv(env, "SDCTL_BACKEND=consul", "CONSUL_HTTP_ADDR="+a.HTTPAddr), "resolve", "http://service-web/x")
	if want := "http://" + web.HostPort(t, "3000") + "/x\n"; out != want {
		t.Errorf("resolve printed %q, want %q", out, want)
	}

	// Docker's HEALTHCHECK is the instance's health in Consul.
	eventually(t, 20*time.Second, func() error {
		got, err := consulOwned(t, a, w.node)
		if err != nil || got[w.id(healthy, "3000")] != "passing" {
			return fmt.Errorf("health %v %v", got, err)
		}
		return nil
	})
	postHealth(t, healthy, "fail")
	eventually(t, 20*time.Second, func() error {
		got, err := consulOwned(t, a, w.node)
		if err != nil || got[w.id(healthy, "3000")] != "critical" {
			return fmt.Errorf("health %v %v", got, err)
		}
		return nil
	})

	// /metrics and /healthz answer.
	eventually(t, 5*time.Second, func() error {
		body, err := httpGetBody("http://" + listen + "/metrics")
		if err != nil || !strings.Contains(body, "sdctl_watch_instances 2") {
			return fmt.Errorf("metrics: %v\n%s", err, body)
		}
		return nil
	})
	if body, err := httpGetBody("http://" + listen + "/healthz"); err != nil || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %q %v", body, err)
	}

	// Kill the backend plugin: it is restarted, and changes keep flowing.
	plugins := childPIDs(p.cmd.Process.Pid)
	if len(plugins) != 1 {
		t.Fatalf("watcher has children %v, want its one backend plugin", plugins)
	}
	syscall.Kill(plugins[0], syscall.SIGKILL)
	third := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=after-plugin-crash"}})
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(web, "3000"), w.id(healthy, "3000"), w.id(third, "3000"))
	if !strings.Contains(p.stderr.String(), "backend plugin restarted") {
		t.Errorf("no log line about the plugin restart:\n%s", p.stderr.String())
	}

	// SIGKILL the watcher while containers change; a new one converges without duplicates.
	p.cmd.Process.Kill()
	p.wait(t, 5*time.Second)
	web.Stop(t, time.Second)
	fourth := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=while-down"}})
	p = w.start(env, args...)
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(healthy, "3000"), w.id(third, "3000"), w.id(fourth, "3000"))

	// SIGTERM with --deregister-on-exit removes everything the node owns.
	p.terminate(t)
	p.wait(t, 10*time.Second)
	q := w.start(env, w.watchArgs("--deregister-on-exit", "consul://"+a.HTTPAddr)...)
	waitLog(t, q, "reconciled")
	waitConsulIDs(t, a, w.node, 20*time.Second, w.id(healthy, "3000"), w.id(third, "3000"), w.id(fourth, "3000"))
	q.terminate(t)
	if code := q.wait(t, 20*time.Second); code != 0 {
		t.Errorf("watch exited %d after SIGTERM, want 0\n%s", code, q.stderr.String())
	}
	waitConsulIDs(t, a, w.node, 5*time.Second)
}

// TestWatchConsulOutage stops Consul for 20 s while 20 containers start and stop, then checks
// that the registry converges to what runs once Consul is back.
func TestWatchConsulOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s registry outage")
	}
	w := newWatchEnv(t)
	a := consultest.StartDev(t)
	env := serverEnv(t)
	p := w.start(env, w.watchArgs("consul://"+a.HTTPAddr)...)
	before := []dockertest.Container{}
	for range 4 {
		before = append(before, w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}}))
	}
	var ids []string
	for _, c := range before {
		ids = append(ids, w.id(c, "3000"))
	}
	waitConsulIDs(t, a, w.node, 20*time.Second, ids...)

	a.Stop()
	down := time.Now()
	var mu sync.Mutex
	var running []string
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}})
			if i%2 == 0 {
				c.Stop(t, time.Second)
				return
			}
			mu.Lock()
			running = append(running, w.id(c, "3000"))
			mu.Unlock()
		}()
	}
	wg.Wait()
	before[0].Remove(t)
	before[1].Stop(t, time.Second)
	time.Sleep(time.Until(down.Add(20 * time.Second)))
	a.Restart(t)
	want := append(running, w.id(before[2], "3000"), w.id(before[3], "3000"))
	waitConsulIDs(t, a, w.node, 30*time.Second, want...)
	if !strings.Contains(p.stderr.String(), "failed: register") {
		t.Errorf("no failed registration logged during the outage")
	}
}

// TestWatchEtcd runs the watcher on etcd with a Registrator-style URI and flags.
func TestWatchEtcd(t *testing.T) {
	w := newWatchEnv(t)
	e := etcdtest.StartSingle(t)
	env := serverEnv(t)
	addr := strings.TrimPrefix(e.ClientURL, "http://")
	w.start(env, append(w.watchArgs("-internal", "-resync", "5"), "etcd://"+addr+"/services")...)
	c := w.run(dockertest.Spec{Env: []string{"SERVICE_5432_NAME=db", "SERVICE_3000_IGNORE=1", "SERVICE_TAGS=primary"}, Expose: []string{"5432"}})
	ip := c.Inspect(t).NetworkSettings.IPAddress
	etcdEnv := withEnv(env, "SDCTL_BACKEND=etcd", "SDCTL_ETCD_ENDPOINTS="+e.ClientURL, "SDCTL_ETCD_PREFIX=/services")
	eventually(t, 20*time.Second, func() error {
		out, _, _ := run(t, etcdEnv, "resolve", "db", "--all")
		if want := ip + ":5432\n"; out != want {
			return fmt.Errorf("resolve db printed %q, want %q", out, want)
		}
		return nil
	})
	c.Stop(t, time.Second)
	eventually(t, 20*time.Second, func() error {
		out, _, code := run(t, etcdEnv, "resolve", "db", "--all")
		if code != 3 {
			return fmt.Errorf("resolve db: exit %d, printed %q; want exit 3 once the container stopped", code, out)
		}
		return nil
	})
}

// TestWatchUsageErrors: bad flags and registry URIs exit 2 before anything is registered.
func TestWatchUsageErrors(t *testing.T) {
	env := userEnv(t)
	for _, args := range [][]string{
		{"watch", "--deregister", "sometimes"},
		{"watch", "zookeeper://127.0.0.1:2181/x"},
		{"watch", "consul://host:notaport"},
		{"watch", "127.0.0.1:8500"},
		{"watch", "--ttl", "30", "--ttl-refresh", "40"},
		{"watch", "--ttl-refresh", "5"},
		{"watch", "--retry-attempts", "-2"},
		{"watch", "-retry-interval", "0"},
		{"watch", "--health-starting", "maybe"},
		{"watch", "--ip", "not-an-ip"},
		{"watch", "--node-id", "a:b"},
		{"watch", "--label", "=x"},
		{"watch", "consul://a:1", "extra"},
	} {
		_, stderr := runCode(t, env, 2, args...)
		if !strings.HasPrefix(stderr, "sdctl: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("sdctl %s: want one error line, got:\n%s", strings.Join(args, " "), stderr)
		}
	}
}

// waitLog waits until the process has logged a line containing s.
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if !strings.Contains(p.stderr.String(), s) {
			return fmt.Errorf("%s has not logged %q yet", p, s)
		}
		return nil
	})
}

func portOf(hostPort string) string {
	_, port, _ := net.SplitHostPort(hostPort)
	return port
}

func postHealth(t *testing.T, c dockertest.Container, state string) {
	t.Helper()
	resp, err := httpClient.Post("http://"+c.HostPort(t, "3000")+"/healthz?state="+state, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGetBody(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestWatchNeedsItsProgram: `sdctl watch` runs sdctl-watch from sdctl's own directory. An sdctl
// copied alone still checks the command line (exit 2), then fails with exit 1 naming the
// missing file and how to install it, and never looks for sdctl-watch on PATH.
func TestWatchNeedsItsProgram(t *testing.T) {
	sdctl, alone := sdctlAlone(t)
	env := cleanEnv(t.TempDir(), filepath.Dir(sdctl)) // PATH holds the real sdctl-watch
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"watch", "--workers", "0"}, 2, "--workers"},
		{[]string{"watch", "--bogus"}, 2, "unknown flag"},
		{[]string{"watch"}, 1, filepath.Join(filepath.Dir(alone), "sdctl-watch") + " is missing"},
	} {
		cmd := exec.Command(alone, tc.args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		code := exitOf(cmd.Run())
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("sdctl %s without sdctl-watch beside it: exit %d, stderr %q; want exit %d and one line with %q",
				strings.Join(tc.args, " "), code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestWatchFromARenamedSdctl: sdctl-watch starts the built-in backend with the sdctl that ran
// it, whatever its name, not with a file called sdctl beside it.
func TestWatchFromARenamedSdctl(t *testing.T) {
	w := newWatchEnv(t)
	sdctl, _ := binaries(t)
	dir := t.TempDir()
	for src, dst := range map[string]string{sdctl: "my-sdctl", filepath.Join(filepath.Dir(sdctl), "sdctl-watch"): "sdctl-watch",
		filepath.Join(filepath.Dir(sdctl), "sdctl-plugin-host"): "sdctl-plugin-host"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mine := filepath.Join(dir, "my-sdctl")
	env := withEnv(userEnv(t), "SDCTL_FILE_PATH="+filepath.Join(t.TempDir(), "registry.json"))
	p := startProgram(t, mine, env, w.watchArgs()...)
	waitLog(t, p, "watching")
	c := w.run(dockertest.Spec{Publish: []string{"127.0.0.1::3000"}, Env: []string{"SERVICE_NAME=renamed-host"}})
	eventually(t, 20*time.Second, func() error {
		cmd := exec.Command(mine, "resolve", "renamed-host")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != c.HostPort(t, "3000") {
			return fmt.Errorf("resolve renamed-host: %v: %s (want %s)", err, out, c.HostPort(t, "3000"))
		}
		return nil
	})
	p.terminate(t)
}

// TestPluginHostNeeded: sdctl hands what needs go-plugin to sdctl-plugin-host beside it. An
// sdctl copied alone says which file is missing and how to install it (exit 1, one line), for
// a command with an external backend, one that starts its backend per command, and one whose
// warm built-in backend cannot start; and never takes an sdctl-plugin-host from PATH.
func TestPluginHostNeeded(t *testing.T) {
	sdctl, alone := sdctlAlone(t)
	home := t.TempDir()
	env := cleanEnv(home, filepath.Dir(sdctl)) // PATH holds the real sdctl-plugin-host and memory backend
	env = withEnv(env, "SDCTL_PLUGIN_PATH="+filepath.Dir(sdctl), "SDCTL_FILE_PATH="+filepath.Join(home, "registry.json"))
	missing := filepath.Join(filepath.Dir(alone), "sdctl-plugin-host") + " is missing"
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{env, []string{"--backend", "memory", "catalog"}},
		{env, []string{"register", "web", "127.0.0.1:80"}},
		{env, []string{"backend", "list"}},
		{withEnv(env, "SDCTL_PLUGIN_IDLE_TIMEOUT=1m", "XDG_RUNTIME_DIR="+t.TempDir()), []string{"resolve", "web"}},
	} {
		cmd := exec.Command(alone, tc.args...)
		cmd.Env = tc.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		code := exitOf(cmd.Run())
		if code != 1 || !strings.Contains(stderr.String(), missing) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("sdctl %s without sdctl-plugin-host beside it: exit %d, stderr %q; want exit 1 and one line with %q",
				strings.Join(tc.args, " "), code, stderr.String(), missing)
		}
	}
	// With it, the same commands work, and nothing was registered by the failed ones.
	cmd := exec.Command(sdctl, "catalog")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("catalog after the failed commands: %v: %q, want an empty registry", err, out)
	}
}

// sdctlAlone returns the built sdctl and a copy of it in a directory of its own, without the
// programs that ship beside it.
func sdctlAlone(t *testing.T) (sdctl, alone string) {
	sdctl, _ = binaries(t)
	alone = filepath.Join(t.TempDir(), "sdctl")
	data, err := os.ReadFile(sdctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return sdctl, alone
}

// TestWatchExternalBackend: the watcher, which does not link go-plugin, runs an external backend
// through the plugin host's bridge; when that backend is killed it starts it again and
// registers what runs.
func TestWatchExternalBackend(t *testing.T) {
	w := newWatchEnv(t)
	_, memory := binaries(t)
	env := withEnv(userEnv(t), "SDCTL_PLUGIN_PATH="+filepath.Dir(memory))
	p := w.start(env, w.watchArgs("--backend", "memory", "--internal")...)
	c := w.run(dockertest.Spec{Env: []string{"SERVICE_3000_NAME=ext-web"}, Expose: []string{"3000"}})
	added := "added: service=ext-web id=" + w.id(c, "3000")
	waitLog(t, p, added)
	plugin := 0
	eventually(t, 10*time.Second, func() error {
		for _, pid := range descendants(p.cmd.Process.Pid) {
			if cmdline(pid) == memory {
				plugin = pid
				return nil
			}
		}
		return fmt.Errorf("no %s process under the watcher", memory)
	})
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "backend plugin restarted; reconciling")
	eventually(t, 20*time.Second, func() error {
		if n := strings.Count(p.stderr.String(), added); n < 2 {
			return fmt.Errorf("%q logged %d times, want it again after the restart", added, n)
		}
		return nil
	})
}

// descendants lists the processes below pid (Linux).
func descendants(pid int) []int {
	parents := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			parents[child], _ = strconv.Atoi(fields[1])
		}
	}
	var out []int
	for child := range parents {
		for p := parents[child]; p > 1; p = parents[p] {
			if p == pid {
				out = append(out, child)
				break
			}
		}
	}
	return out
}

// cmdline is the first word of pid's command line.
func cmdline(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	first, _, _ := strings.Cut(string(data), "\x00")
	return first
}
