package harness_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
)

// The tests of consultest and etcdtest cover the servers as the tests use them; these cover
// what only the benchmark uses: the servers' own defaults, RestartEmpty without a test, and
// the CPU accounting.

func TestConsulDefaults(t *testing.T) {
	t.Parallel()
	bin := consultest.Binary(t)
	ctx := t.Context()
	a, err := harness.StartConsul(ctx, harness.ConsulOptions{Bin: bin, Dir: t.TempDir(), Name: "bench", LogLevel: "WARN", Defaults: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	if a.DNSAddr != "" || a.SerfWANAddr != "" || a.HTTPAddr == "" || a.ReadyAfter <= 0 {
		t.Errorf("DNSAddr %q, SerfWANAddr %q, HTTPAddr %q, ReadyAfter %s: want only the HTTP API, LAN gossip and RPC, and the time to ready", a.DNSAddr, a.SerfWANAddr, a.HTTPAddr, a.ReadyAfter)
	}
	conf, err := os.ReadFile(a.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tuned := range []string{"gossip_lan", "autopilot", "leave_drain_time"} {
		if strings.Contains(string(conf), tuned) {
			t.Errorf("config file sets %s, want Consul's default:\n%s", tuned, conf)
		}
	}
	if !strings.Contains(string(conf), `log_level        = "WARN"`) {
		t.Errorf("config file without log level WARN:\n%s", conf)
	}

	// RestartEmpty: on the same address, ready again, without what was registered.
	addr := a.HTTPAddr
	resp, err := a.Request(http.MethodPut, "/v1/agent/service/register", strings.NewReader(`{"ID": "web-1", "Name": "web", "Port": 3000}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %s", resp.Status)
	}
	pid := a.PID()
	if err := a.RestartEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	var services map[string]any
	if err := a.GetJSON("/v1/agent/services", &services); err != nil {
		t.Fatal(err)
	}
	if a.HTTPAddr != addr || a.PID() == pid || len(services) != 0 {
		t.Errorf("after RestartEmpty: address %s (was %s), PID %d (was %d), services %v: want the same address, a new process and no services", a.HTTPAddr, addr, a.PID(), pid, services)
	}

	// CPU time: the killed run's counts as exited; after Stop all of it does.
	if total, exited := a.CPUTime(); exited <= 0 || total < exited {
		t.Errorf("CPUTime = %s, %s: want the killed run's time in both", total, exited)
	}
	a.Stop()
	if a.Running() {
		t.Fatal("agent running after Stop")
	}
	if total, exited := a.CPUTime(); total != exited {
		t.Errorf("after Stop CPUTime = %s, %s: want all of it exited", total, exited)
	}
	if !strings.Contains(a.Log(), "=== harness") {
		t.Errorf("the log has no line of the harness:\n%s", a.LogTail(20))
	}
}

func TestEtcdDefaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts an etcd server; skipped with -short")
	}
	bin := etcdtest.Binary(t)
	ms, err := harness.StartEtcd(t.Context(), 1, harness.EtcdOptions{Bin: bin, Dir: t.TempDir(), LogLevel: "warn", Defaults: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	m := ms[0]
	t.Cleanup(m.Kill)
	if !strings.HasPrefix(m.ClientURL, "http://127.0.0.1:") || m.ReadyAfter <= 0 {
		t.Errorf("ClientURL %q, ReadyAfter %s", m.ClientURL, m.ReadyAfter)
	}
	started := strings.SplitN(m.Log(), "\n", 2)[0]
	for _, flag := range []string{"--unsafe-no-fsync", "--heartbeat-interval", "--election-timeout"} {
		if strings.Contains(started, flag) {
			t.Errorf("started with %s, want etcd's default: %s", flag, started)
		}
	}
	m.Stop()
	if m.Running() {
		t.Fatal("member running after Stop")
	}
	if total, exited := m.CPUTime(); total <= 0 || total != exited {
		t.Errorf("after Stop CPUTime = %s, %s: want all of it, and some, exited", total, exited)
	}
}

func TestFreePorts(t *testing.T) {
	seen := map[int]bool{}
	for range 3 {
		ports, err := harness.FreePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "consul-bin.sh")); err != nil {
		t.Errorf("ModuleRoot = %s: %v", root, err)
	}
}
