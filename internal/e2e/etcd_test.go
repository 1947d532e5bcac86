package e2e

// The sdctl binary against real etcd servers (internal/testutil/etcdtest), configured the way a
// user does it: --backend etcd and etcdctl's ETCDCTL_* variables. Without an etcd binary these
// tests skip (fail under SDCTL_TEST_REQUIRE_ALL=1), except those that need no server.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// etcdArgs prefixes args with --backend etcd.
func etcdArgs(args ...string) []string {
	return append([]string{"--backend", "etcd"}, args...)
}

// TestEtcd runs the everyday commands against a single etcd member.
func TestEtcd(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	env := serverEnv(t, "ETCDCTL_ENDPOINTS="+m.ClientURL)

	t.Run("RegisterResolveDeregister", func(t *testing.T) {
		t.Parallel()
		id1 := strings.TrimSpace(mustRun(t, env, etcdArgs("register", "web", "10.0.0.1:3000", "--tag", "v1", "--meta", "team=a", "--weight", "3")...))
		id2 := strings.TrimSpace(mustRun(t, env, etcdArgs("register", "web", "10.0.0.2:3000", "--tag", "v2", "--id", "web-b")...))
		if id1 != "web-10.0.0.1-3000" || id2 != "web-b" {
			t.Errorf("register printed IDs %q and %q", id1, id2)
		}
		if out := mustRun(t, env, etcdArgs("resolve", "web", "--all")...); out != "10.0.0.1:3000\n10.0.0.2:3000\n" {
			t.Errorf("resolve web --all: %q", out)
		}
		if out := mustRun(t, env, etcdArgs("resolve", "web")...); out != "10.0.0.1:3000\n" && out != "10.0.0.2:3000\n" {
			t.Errorf("resolve web: %q", out)
		}
		if out := mustRun(t, env, etcdArgs("resolve", "web", "--tag", "v2")...); out != "10.0.0.2:3000\n" {
			t.Errorf("resolve web --tag v2: %q", out)
		}
		if out := mustRun(t, env, etcdArgs("resolve", "https://web/p?q=1", "--tag", "v1")...); out != "https://10.0.0.1:3000/p?q=1\n" {
			t.Errorf("URL rewrite: %q", out)
		}
		var insts []jsonInstance
		out := mustRun(t, env, etcdArgs("resolve", "web", "--all", "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &insts); err != nil || len(insts) != 2 {
			t.Fatalf("resolve -o json: %v\n%s", err, out)
		}
		if in := insts[0]; in.ID != id1 || in.Name != "web" || in.Address != "10.0.0.1" || in.Port != 3000 ||
			!slices.Equal(in.Tags, []string{"v1"}) || in.Meta["team"] != "a" || in.Weight != 3 || in.Health != "passing" {
			t.Errorf("resolve -o json: first instance %+v", in)
		}

		out = mustRun(t, env, etcdArgs("catalog")...)
		if !slices.Contains(lines(out), "web\t2\t2\tv1,v2") {
			t.Errorf("catalog: %q, want the line web 2 2 v1,v2", out)
		}
		out = mustRun(t, env, etcdArgs("catalog", "web")...)
		for _, line := range []string{id1 + "\t10.0.0.1:3000\tpassing\tv1\tteam=a", "web-b\t10.0.0.2:3000\tpassing\tv2\t"} {
			if !slices.Contains(lines(out), line) {
				t.Errorf("catalog web:\n%s\nwant the line %q", out, line)
			}
		}

		// The keys are etcd's naming/endpoints records, as documented.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		resp, err := etcdtest.Client(t, m).Get(ctx, "/services/web/"+id1)
		if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"Addr":"10.0.0.1:3000"`) {
			t.Errorf("etcd key /services/web/%s: %v %v", id1, resp, err)
		}

		mustRun(t, env, etcdArgs("deregister", id1)...)
		mustRun(t, env, etcdArgs("deregister", "web-b")...)
		runCode(t, env, 3, etcdArgs("resolve", "web")...)
		if _, stderr := runCode(t, env, 3, etcdArgs("deregister", id1)...); !strings.Contains(stderr, id1) {
			t.Errorf("deregister of a missing ID: stderr %q does not name it", stderr)
		}
		mustRun(t, env, etcdArgs("deregister", "--ignore-missing", id1)...)
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		mustRun(t, env, etcdArgs("register", "once", "10.0.0.3:80", "--ttl", "2s")...)
		if out := mustRun(t, env, etcdArgs("resolve", "once")...); out != "10.0.0.3:80\n" {
			t.Errorf("resolve right after register --ttl: %q", out)
		}
		start := time.Now()
		eventually(t, 10*time.Second, func() error {
			if out, stderr, code := run(t, env, etcdArgs("resolve", "once")...); code != 3 {
				return fmt.Errorf("resolve of an instance whose lease expired: exit %d, %q, %s; want 3", code, out, stderr)
			}
			return nil
		})
		t.Logf("the 2s lease expired %v after the first resolve", time.Since(start).Round(time.Millisecond))
		runCode(t, env, 3, etcdArgs("catalog", "once")...)
	})

	t.Run("Keepalive", func(t *testing.T) {
		t.Parallel()
		p := startSdctl(t, env, etcdArgs("register", "--ttl", "2s", "--keepalive", "kept", "10.0.0.4:80")...)
		if id := p.firstLine(t, 15*time.Second); id != "kept-10.0.0.4-80" {
			t.Errorf("register --keepalive printed %q", id)
		}
		time.Sleep(3 * time.Second) // longer than the TTL
		if out, stderr, code := run(t, env, etcdArgs("resolve", "kept")...); code != 0 || out != "10.0.0.4:80\n" {
			t.Fatalf("resolve after one TTL with --keepalive: exit %d, %q, %s", code, out, stderr)
		}
		p.terminate(t)
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("register --keepalive after SIGTERM: exit %d, want 0\n%s", code, p.stderr.String())
		}
		runCode(t, env, 3, etcdArgs("resolve", "kept")...)
	})

	t.Run("ResolveWait", func(t *testing.T) {
		t.Parallel()
		p := startSdctl(t, env, etcdArgs("resolve", "later", "--wait", "60s")...)
		time.Sleep(time.Second)
		if p.exited() {
			t.Fatalf("resolve --wait exited (%d) before any instance existed: %s", p.code, p.stderr.String())
		}
		mustRun(t, env, etcdArgs("register", "later", "10.0.0.5:80")...)
		registered := time.Now()
		if code := p.wait(t, 15*time.Second); code != 0 || p.stdout.String() != "10.0.0.5:80\n" {
			t.Fatalf("resolve --wait: exit %d, %q, %s", code, p.stdout.String(), p.stderr.String())
		}
		t.Logf("resolve --wait returned %v after the registration", time.Since(registered).Round(time.Millisecond))
	})

	t.Run("ClusterStatus", func(t *testing.T) {
		t.Parallel()
		out := mustRun(t, env, etcdArgs("cluster", "status")...)
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m.Name+"\t"+m.ClientURL) + `\tleader\ttrue\thealthy\t3\.6\.`)
		if !row.MatchString(out) {
			t.Errorf("cluster status:\n%s\nwant %s as healthy leader", out, m.Name)
		}
	})
}

// TestEtcdUnreachable: with no etcd at the endpoints, commands fail within the dial timeout with
// exit code 4 and name the endpoints.
func TestEtcdUnreachable(t *testing.T) {
	t.Parallel()
	down1, down2 := registrytest.ClosedAddr(t), registrytest.ClosedAddr(t)
	env := serverEnv(t, "ETCDCTL_ENDPOINTS="+down1+",http://"+down2)
	start := time.Now()
	_, stderr := runCode(t, env, 4, etcdArgs("resolve", "web")...)
	if d := time.Since(start); d > 2*time.Second+3*time.Second {
		t.Errorf("resolve took %v, want the dial timeout (2s) and a little", d)
	}
	if !strings.Contains(stderr, down1) || !strings.Contains(stderr, down2) || !strings.Contains(stderr, "within 2s") {
		t.Errorf("resolve: stderr %q does not name both endpoints and the dial timeout", stderr)
	}
	// ETCDCTL_DIAL_TIMEOUT sets the dial timeout; every command fails the same way.
	short := withEnv(env, "ETCDCTL_DIAL_TIMEOUT=500ms")
	for _, args := range [][]string{{"resolve", "web"}, {"register", "web", "10.0.0.1:80"}, {"deregister", "web-1"}, {"catalog"}, {"cluster", "status"}} {
		start := time.Now()
		_, stderr := runCode(t, short, 4, etcdArgs(args...)...)
		if d := time.Since(start); d > 500*time.Millisecond+2*time.Second {
			t.Errorf("sdctl %s took %v with ETCDCTL_DIAL_TIMEOUT=500ms", strings.Join(args, " "), d)
		}
		if !strings.Contains(stderr, down1) || !strings.Contains(stderr, down2) || !strings.Contains(stderr, "within 500ms") {
			t.Errorf("sdctl %s: stderr %q does not name both endpoints and the dial timeout", strings.Join(args, " "), stderr)
		}
	}
	// --wait keeps asking until the wait ends, then reports the registry unreachable.
	if _, stderr := runCode(t, short, 4, etcdArgs("resolve", "web", "--wait", "2s")...); !strings.Contains(stderr, "after waiting 2s") || !strings.Contains(stderr, down1) {
		t.Errorf("resolve --wait 2s: stderr %q does not say it waited and name the endpoints", stderr)
	}
	// An endpoint that accepts connections and never answers counts as unreachable too.
	silent := newSilentListener(t)
	start = time.Now()
	_, stderr = runCode(t, withEnv(env, "ETCDCTL_ENDPOINTS="+silent), 4, etcdArgs("resolve", "web")...)
	if d := time.Since(start); d > 5*time.Second || !strings.Contains(stderr, silent) {
		t.Errorf("resolve against a silent endpoint: %v, %q; want exit 4 within the dial timeout naming %s", d, stderr, silent)
	}
}

// TestEtcdAuth runs against a member with authentication on: a wrong password is exit code 5,
// the right one works, and no command prints the password, not even at trace level.
func TestEtcdAuth(t *testing.T) {
	t.Parallel()
	m, rootPassword := etcdtest.StartAuth(t)
	base := serverEnv(t, "ETCDCTL_ENDPOINTS="+m.ClientURL, "ETCDCTL_USER="+m.Auth.User)
	good := withEnv(base, "ETCDCTL_PASSWORD="+m.Auth.Password)
	wrongPassword := "not-" + m.Auth.Password
	bad := withEnv(base, "ETCDCTL_PASSWORD="+wrongPassword)

	sdctl := func(env []string, want int, args ...string) (string, string) {
		t.Helper()
		out, stderr := runCode(t, env, want, etcdArgs(args...)...)
		for _, secret := range []string{m.Auth.Password, wrongPassword, rootPassword} {
			noSecret(t, secret, "sdctl "+strings.Join(args, " "), out, stderr)
		}
		return out, stderr
	}

	for _, args := range [][]string{{"resolve", "web"}, {"--log-level", "trace", "register", "web", "10.0.0.1:80"}, {"--log-level", "trace", "cluster", "status"}} {
		_, stderr := sdctl(bad, 5, args...)
		if !strings.Contains(stderr, "authentication failed") || !strings.Contains(stderr, `"`+m.Auth.User+`"`) {
			t.Errorf("sdctl %s with a wrong password: %q, want authentication failed naming user %q", strings.Join(args, " "), stderr, m.Auth.User)
		}
	}

	for _, args := range tracedCommands("--ttl", "30s") {
		sdctl(good, 0, args...)
	}
	// USER:PASSWORD in ETCDCTL_USER, as etcdctl --user takes it.
	combined := serverEnv(t, "ETCDCTL_ENDPOINTS="+m.ClientURL, "ETCDCTL_USER="+m.Auth.User+":"+m.Auth.Password)
	if out, _ := sdctl(combined, 0, "--log-level", "trace", "resolve", "web"); out != "10.0.0.1:80\n" {
		t.Errorf("resolve with ETCDCTL_USER=user:password: %q", out)
	}

	// Outside the role's prefix: permission denied, naming the user and the key.
	_, stderr := sdctl(withEnv(good, "SDCTL_ETCD_PREFIX=/other"), 5, "register", "web", "10.0.0.1:80")
	if !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "/other/web/") || !strings.Contains(stderr, m.Auth.User) {
		t.Errorf("register outside the role's prefix: %q", stderr)
	}

	for _, env := range [][]string{good, bad, combined} {
		out, _ := sdctl(env, 0, "config", "view")
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("config view:\n%s\nwant the password <redacted>", out)
		}
	}
	if out, _ := sdctl(good, 0, "config", "view"); !regexp.MustCompile(`(?m)^  password: <redacted> # env ETCDCTL_PASSWORD$`).MatchString(out) {
		t.Errorf("config view with ETCDCTL_PASSWORD:\n%s", out)
	}
}

// TestEtcdTLS runs against a member that serves TLS only and wants client certificates.
func TestEtcdTLS(t *testing.T) {
	t.Parallel()
	m, files := etcdtest.StartTLS(t)
	env := serverEnv(t, "ETCDCTL_ENDPOINTS="+m.ClientURL, "ETCDCTL_CACERT="+files.CAFile,
		"ETCDCTL_CERT="+files.CertFile, "ETCDCTL_KEY="+files.KeyFile)
	mustRun(t, env, etcdArgs("register", "web", "10.0.0.1:80")...)
	if out := mustRun(t, env, etcdArgs("resolve", "web")...); out != "10.0.0.1:80\n" {
		t.Errorf("resolve over TLS: %q", out)
	}
	host := strings.TrimPrefix(m.ClientURL, "https://")
	for _, tc := range []struct {
		what string
		drop string // prefix of the variables left out
	}{
		{"without the CA", "ETCDCTL_CACERT="},
		{"without a client certificate", "ETCDCTL_CERT"},
	} {
		var e []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, tc.drop) && !(tc.drop == "ETCDCTL_CERT" && strings.HasPrefix(kv, "ETCDCTL_KEY=")) {
				e = append(e, kv)
			}
		}
		start := time.Now()
		out, stderr, code := run(t, e, etcdArgs("resolve", "web")...)
		if code != 4 || !strings.Contains(stderr, host) {
			t.Errorf("resolve %s: exit %d, %q, %q; want 4 naming %s", tc.what, code, out, stderr, host)
		}
		t.Logf("resolve %s (%v): exit %d: %s", tc.what, time.Since(start).Round(time.Millisecond), code, strings.TrimSpace(stderr))
	}
}

// TestEtcdLeaderKilled resolves a service with 200 sdctl processes, one after another, while the
// leader of a 3-member cluster is killed with SIGKILL after the 40th; the leader is the first
// endpoint in ETCDCTL_ENDPOINTS. Not parallel: the timings mean more on a quiet machine.
func TestEtcdLeaderKilled(t *testing.T) {
	members := etcdtest.StartCluster(t, 3)
	leader := etcdtest.Leader(t, members...)
	var survivors []*etcdtest.Member
	endpoints := []string{leader.ClientURL}
	for _, m := range members {
		if m != leader {
			survivors = append(survivors, m)
			endpoints = append(endpoints, m.ClientURL)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := etcdtest.Client(t, leader).Status(ctx, leader.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	oldID := st.Header.MemberId
	watcher := etcdtest.Client(t, survivors...)

	env := serverEnv(t, "ETCDCTL_ENDPOINTS="+strings.Join(endpoints, ","))
	mustRun(t, env, etcdArgs("register", "web", "10.0.2.1:3000")...)
	mustRun(t, env, etcdArgs("register", "web", "10.0.2.2:3000")...)

	elected := func() bool {
		for _, m := range survivors {
			c, cancel := context.WithTimeout(ctx, time.Second)
			st, err := watcher.Status(c, m.ClientURL)
			cancel()
			if err == nil && st.Leader != 0 && st.Leader != oldID {
				return true
			}
		}
		return false
	}
	f := resolveLoop(t, env, 200, 40, leader.Kill, elected, etcdArgs("resolve", "web")...)
	f.report(t, 0)

	next := etcdtest.Leader(t, survivors...)
	t.Logf("killed leader %s; %s leads now", leader.Name, next.Name)
	var status string
	eventually(t, 30*time.Second, func() error {
		out, stderr, code := run(t, env, etcdArgs("cluster", "status")...)
		status = out
		if code != 0 || !regexp.MustCompile(`(?m)^`+next.Name+`\t.*\tleader\ttrue\thealthy\t`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^`+leader.Name+`\t.*\tunreachable`).MatchString(out) {
			return fmt.Errorf("cluster status after the kill: exit %d, %s\n%s", code, stderr, out)
		}
		return nil
	})
	t.Logf("cluster status after the kill:\n%s", status)

	// Writes go on too.
	mustRun(t, env, etcdArgs("register", "web", "10.0.2.3:3000")...)
	if out := mustRun(t, env, etcdArgs("resolve", "web", "--all")...); len(lines(out)) != 3 {
		t.Errorf("resolve --all after the failover: %q, want 3 instances", out)
	}
}
