package e2e

// The CLI contract, checked on the built binary with real plugin processes against the file
// backend, a real Consul agent and a real etcd member: every input is honoured or refused (exit 2,
// one line on stderr, before anything is written), exit codes mean what docs/exit-codes.md says,
// nothing panics, and a refused command leaves the registry exactly as it was.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
)

// contractCase is one command line and what it must do.
type contractCase struct {
	name string
	args []string
	// stdin feeds the command; files are written to its working directory first.
	stdin string
	files map[string]string
	// env adds variables ("KEY=VALUE").
	env []string
	// want is the exit code.
	want int
	// stderr and stdout must match (regexps) when set; secret must not appear in either.
	stderr string
	stdout string
	secret string
	// only limits the case to some backends.
	only []string
}

// contractBackend is a registry under test: how to point sdctl at it and how to fingerprint
// everything it stores, to prove a refused command wrote nothing.
type contractBackend struct {
	name        string
	env         []string
	fingerprint func(t *testing.T) string
}

func TestContract(t *testing.T) {
	t.Parallel()
	// Users get warm backends by default (plugin-idle-timeout 1m), so the contract holds there;
	// the file backend also runs with one backend process per command.
	backends := []contractBackend{fileContractBackend(t), warm(t, fileContractBackend(t))}
	if testing.Short() {
		t.Log("-short: the contract runs on the file backend only")
	} else {
		backends = append(backends, warm(t, consulContractBackend(t)), warm(t, etcdContractBackend(t)))
	}
	cases := contractCases()
	total := 0
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			seed(t, b)
			for _, tc := range cases {
				if len(tc.only) > 0 && !slices.Contains(tc.only, strings.TrimSuffix(b.name, "-warm")) {
					continue
				}
				total++
				t.Run(tc.name, func(t *testing.T) { runContractCase(t, b, tc) })
			}
		})
	}
	t.Logf("%d contract cases run across %d backends", total, len(backends))
}

// seed registers the instances the cases expect to find: service-web x2, a critical one, and
// one of a service whose name has capitals.
func seed(t *testing.T, b contractBackend) {
	t.Helper()
	env := withEnv(b.env)
	mustRun(t, env, "register", "service-web", "10.0.0.1:3000", "--tag", "v1", "--meta", "team=web")
	mustRun(t, env, "register", "service-web", "10.0.0.2:3000", "--tag", "v2")
	mustRun(t, env, "register", "Service-Caps", "10.0.0.4:3000")
	// A service whose only instance is declared critical.
	crit := "[{\"name\": \"service-down\", \"address\": \"10.0.0.3\", \"port\": 3000, \"health\": \"critical\"}]"
	if out, stderr, code := runIn(t, t.TempDir(), crit, env, "register", "-f", "-"); code != 0 {
		t.Fatalf("seeding service-down: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
}

var oneErrorLine = regexp.MustCompile(`^sdctl: [^\n]+\n$`)

func runContractCase(t *testing.T, b contractBackend, tc contractCase) {
	dir := t.TempDir()
	for name, content := range tc.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := tc.want
	before := b.fingerprint(t)
	stdout, stderr, code := runIn(t, dir, tc.stdin, withEnv(b.env, tc.env...), tc.args...)
	cmdline := "sdctl " + strings.Join(tc.args, " ")
	if code != want {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", cmdline, code, want, stdout, stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("%s: stack trace on stderr:\n%s", cmdline, stderr)
	}
	if want != 0 && !oneErrorLine.MatchString(stderr) {
		t.Errorf("%s: stderr is not exactly one \"sdctl: ...\" line:\n%q", cmdline, stderr)
	}
	if tc.stderr != "" && !regexp.MustCompile(tc.stderr).MatchString(stderr) {
		t.Errorf("%s: stderr %q does not match %q", cmdline, stderr, tc.stderr)
	}
	if tc.stdout != "" && !regexp.MustCompile(tc.stdout).MatchString(stdout) {
		t.Errorf("%s: stdout %q does not match %q", cmdline, stdout, tc.stdout)
	}
	if tc.secret != "" && (strings.Contains(stderr, tc.secret) || strings.Contains(stdout, tc.secret)) {
		t.Errorf("%s: the secret %q was printed:\nstdout: %s\nstderr: %s", cmdline, tc.secret, stdout, stderr)
	}
	if want != 0 {
		if after := b.fingerprint(t); after != before {
			t.Errorf("%s: exit %d but the registry changed:\nbefore: %s\nafter:  %s", cmdline, code, before, after)
		}
	}
}

// runIn runs sdctl in dir with stdin and env; it returns stdout, stderr and the exit code.
func runIn(t *testing.T, dir, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	sdctl, _ := binaries(t)
	cmd := exec.Command(sdctl, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := ranCode(t, cmd.Run())
	return stdout.String(), stderr.String(), code
}

// warm gives b's commands warm backends in a runtime directory of the test's own; they are
// stopped when the test ends.
func warm(t *testing.T, b contractBackend) contractBackend {
	b.env = warmEnv(t, b.env)
	b.name += "-warm"
	return b
}

func fileContractBackend(t *testing.T) contractBackend {
	path := filepath.Join(t.TempDir(), "registry.json")
	env := withEnv(userEnv(t), "SDCTL_FILE_PATH="+path)
	return contractBackend{name: "file", env: env, fingerprint: func(t *testing.T) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return fmt.Sprintf("%d bytes sha256 %s", len(data), hex.EncodeToString(sum[:8]))
	}}
}

func consulContractBackend(t *testing.T) contractBackend {
	a := consultest.StartDev(t)
	env := withEnv(serverEnv(t, "SDCTL_BACKEND=consul"), a.Env()...)
	return contractBackend{name: "consul", env: env, fingerprint: func(t *testing.T) string {
		var parts []string
		for _, path := range []string{"/v1/agent/services", "/v1/agent/checks"} {
			resp, err := a.Request(http.MethodGet, path, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, string(body))
		}
		return strings.Join(parts, " ")
	}}
}

func etcdContractBackend(t *testing.T) contractBackend {
	m := etcdtest.StartSingle(t)
	env := serverEnv(t, "SDCTL_BACKEND=etcd", "ETCDCTL_ENDPOINTS="+m.ClientURL)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return contractBackend{name: "etcd", env: env, fingerprint: func(t *testing.T) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		// The store's revision moves with every write, lease grants aside.
		keys := make([]string, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			keys = append(keys, fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision))
		}
		sort.Strings(keys)
		return fmt.Sprintf("revision %d: %s", resp.Header.Revision, strings.Join(keys, " "))
	}}
}
