package commands

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/builtin"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// The test binary serves the built-in backends itself, as sdctl does, so commands run here
// against a real plugin subprocess.
func TestMain(m *testing.M) {
	if code, ok := plugins.ServeBuiltin(os.Args[1:], builtin.Backends()); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// sandbox gives a test a fresh HOME and registry file and clears SDCTL_* variables.
func sandbox(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SDCTL_") || strings.HasPrefix(k, "XDG_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("HOME", home)
	t.Chdir(home)
	return home
}

type result struct {
	stdout, stderr string
	code           int
}

// sdctl runs one command line in-process (the backend still runs as a subprocess).
func sdctl(t *testing.T, args ...string) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Builtins: builtin.Backends(), Bundled: builtin.Bundled(), Executable: exe,
		StartBackend: plugins.Start}
	code := Run(context.Background(), f, args)
	return result{out.String(), errOut.String(), code}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := sdctl(t, args...)
	if r.code != 0 {
		t.Fatalf("sdctl %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testutil.ModuleRoot(t), "commands", "testdata", "golden", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./commands -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test ./commands -update refreshes it)\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestGoldenOutput(t *testing.T) {
	home := sandbox(t)
	mustRun(t, "register", "web", "10.0.0.1:3000", "--tag", "v1", "--meta", "team=a", "--meta", "tier=front")
	mustRun(t, "register", "web", "10.0.0.2:3000", "--tag", "v2", "--weight", "3")
	mustRun(t, "register", "api", "[fd00::5]:8080", "--id", "api-1")
	mustRun(t, "register", "cron", "10.0.0.9:9000", "--ttl", "1h")

	normalize := func(s string) string {
		s = strings.ReplaceAll(s, home, "$HOME")
		return regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+Z`).ReplaceAllString(s, "$$TIME")
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"catalog", []string{"catalog"}},
		{"catalog-json", []string{"catalog", "-o", "json"}},
		{"catalog-yaml", []string{"catalog", "-o", "yaml"}},
		{"catalog-web", []string{"catalog", "web"}},
		{"catalog-web-json", []string{"catalog", "web", "-o", "json"}},
		{"resolve-all", []string{"resolve", "web", "--all"}},
		{"resolve-first-json", []string{"resolve", "web", "--strategy", "first", "-o", "json"}},
		{"resolve-all-yaml", []string{"resolve", "cron", "--all", "-o", "yaml"}},
		{"resolve-url", []string{"resolve", "http://api/x?y=1"}},
		{"config-view", []string{"config", "view"}},
		{"help", []string{"--help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name, normalize(mustRun(t, tc.args...)))
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want func(*RegisterOptions) string // "" when the options are right
	}{
		{"positional", []string{"web", "10.0.0.1:80"}, func(o *RegisterOptions) string {
			return check(o.Name == "web" && o.HostPort == "10.0.0.1:80", o)
		}},
		{"address and port", []string{"web", "--address", "10.0.0.1", "--port", "80"}, func(o *RegisterOptions) string {
			return check(o.Address == "10.0.0.1" && o.Port == 80 && o.HostPort == "", o)
		}},
		{"repeated tags and meta", []string{"web", ":80", "--tag", "a", "--tag", "b,c", "--meta", "k=v", "--meta", "x=y=z"}, func(o *RegisterOptions) string {
			return check(strings.Join(o.Tags, "|") == "a|b,c" && strings.Join(o.Meta, "|") == "k=v|x=y=z", o)
		}},
		{"ttl keepalive", []string{"web", ":80", "--ttl", "10s", "--keepalive"}, func(o *RegisterOptions) string {
			return check(o.TTL == 10*time.Second && o.Keepalive, o)
		}},
		{"checks", []string{"web", ":80", "--check-http", "http://x/h", "--check-interval", "5s", "--check-timeout", "1s", "--check-deregister-after", "1m"}, func(o *RegisterOptions) string {
			return check(o.CheckHTTP == "http://x/h" && o.CheckInterval == 5*time.Second && o.CheckTimeout == time.Second && o.CheckDeregisterAfter == time.Minute, o)
		}},
		{"batch", []string{"-f", "x.yaml"}, func(o *RegisterOptions) string { return check(o.File == "x.yaml", o) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *RegisterOptions
			cmd := newRegisterCmd(&Factory{}, func(_ context.Context, o *RegisterOptions) error { got = o; return nil })
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(got); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func check(ok bool, v any) string {
	if ok {
		return ""
	}
	return fmt.Sprintf("unexpected options %+v", v)
}

func TestRegisterOptionsToInstance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    RegisterOptions
		portSet bool
		wantID  string
		wantErr string
	}{
		{"default id", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80"}, false, "web-10.0.0.1-80", ""},
		{"explicit id", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80", ID: "w1"}, false, "w1", ""},
		{"ipv6", RegisterOptions{Name: "web", HostPort: "[::1]:80"}, false, "web-::1-80", ""},
		{"both forms", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80", Address: "10.0.0.2"}, false, "", "not both"},
		{"port flag 0", RegisterOptions{Name: "web", Address: "10.0.0.1", Port: 0}, true, "", "out of range"},
		{"no address", RegisterOptions{Name: "web"}, false, "", "missing HOST:PORT"},
		{"bad check url", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80", CheckHTTP: "ftp://x", CheckInterval: time.Second}, false, "", "not an http"},
		{"bad check tcp", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80", CheckTCP: "nope", CheckInterval: time.Second}, false, "", "check-tcp"},
		{"bad initial status", RegisterOptions{Name: "web", HostPort: "10.0.0.1:80", CheckTCP: "10.0.0.1:80", CheckInterval: time.Second, CheckInitialStatus: "green"}, false, "", "initial status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := tc.opts.instance(tc.portSet)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err, false) != ExitUsage {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || inst.ID != tc.wantID {
				t.Fatalf("instance = %+v, %v; want ID %q", inst, err, tc.wantID)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err         error
		interrupted bool
		want        int
	}{
		{nil, false, ExitOK},
		{errors.New("boom"), false, ExitError},
		{usage(errors.New("bad flag")), false, ExitUsage},
		{registry.Invalidf("port", "bad"), false, ExitUsage},
		{fmt.Errorf("x: %w", registry.ErrUnsupported), false, ExitUsage},
		{fmt.Errorf("x: %w", registry.ErrNotFound), false, ExitNotFound},
		{fmt.Errorf("x: %w", registry.ErrUnavailable), false, ExitUnavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false, ExitUnavailable},
		{fmt.Errorf("x: %w", registry.ErrPermissionDenied), false, ExitPermissionDenied},
		{fmt.Errorf("x: %w", registry.ErrNoLeader), false, ExitNoLeader},
		{context.Canceled, true, ExitInterrupted},
		{errors.New("broken by the signal"), true, ExitInterrupted},
	} {
		if got := exitCode(tc.err, tc.interrupted); got != tc.want {
			t.Errorf("exitCode(%v, %t) = %d, want %d", tc.err, tc.interrupted, got, tc.want)
		}
	}
	seen := map[int]bool{}
	for _, c := range ExitCodes {
		if seen[c.Code] {
			t.Errorf("exit code %d has two meanings", c.Code)
		}
		seen[c.Code] = true
	}
}

// TestExitCodesDoc keeps docs/exit-codes.md in step with the table above.
func TestExitCodesDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "docs", "exit-codes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ExitCodes {
		row := fmt.Sprintf("| %d | %s | %s |", c.Code, c.Name, c.Meaning)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/exit-codes.md lacks the row\n%s", row)
		}
	}
}

func TestBatchFiles(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		ids        []string
		wantErr    string
	}{
		{"yaml list", "- {name: web, address: 10.0.0.1, port: 80}\n", []string{"web-10.0.0.1-80"}, ""},
		{"yaml object", "instances:\n  - {id: a, name: web, address: 10.0.0.1, port: 80, ttl: 5s}\n", []string{"a"}, ""},
		{"json list", `[{"name":"web","address":"10.0.0.1","port":80}]`, []string{"web-10.0.0.1-80"}, ""},
		{"json object", `{"instances":[{"id":"b","name":"web","address":"10.0.0.1","port":80}]}`, []string{"b"}, ""},
		{"unknown json field", `[{"name":"web","adress":"10.0.0.1","port":80}]`, nil, `unknown key "adress"; did you mean "address"?`}, //nolint:misspell // the typo is the test
		{"unknown yaml field", "- name: web\n  addr: 10.0.0.1\n  port: 80\n", nil, `entry 1 (line 1): unknown key "addr"`},
		{"unknown yaml key foo", "instances:\n  - name: web\n    address: 10.0.0.1\n    port: 80\n    foo: 1\n", nil, `unknown key "foo"`},
		{"unknown check key", "- {name: web, address: 10.0.0.1, port: 80, checks: [{kind: http, target: 'http://x/', every: 5s}]}\n", nil, `unknown key "every"`},
		{"key next to instances", "instances: []\nversion: 2\n", nil, `unknown key "version" next to instances`},
		{"duplicate yaml key", "- {name: web, name: api, address: 10.0.0.1, port: 80}\n", nil, "already defined"},
		{"duplicate json key", `[{"name":"web","name":"api","address":"10.0.0.1","port":80}]`, nil, "already defined"},
		{"duplicate ids", "- {id: a, name: web, address: 10.0.0.1, port: 80}\n- {id: a, name: web, address: 10.0.0.2, port: 80}\n", nil, `entry 2 (line 2) has the same ID "a" as entry 1`},
		{"duplicate default ids", "- {name: web, address: 10.0.0.1, port: 80}\n- {name: web, address: 10.0.0.1, port: 80, tags: [x]}\n", nil, "same ID"},
		{"string port", "- {name: web, address: 10.0.0.1, port: '80'}\n", nil, "port: a string where a whole number is expected"},
		{"health a mapping", "- {name: web, address: 10.0.0.1, port: 80, health: {status: ok}}\n", nil, "health: an object where a string is expected"},
		{"meta number", "- {name: web, address: 10.0.0.1, port: 80, meta: {v: 2}}\n", nil, "meta: a number where a string is expected"},
		{"entry not a mapping", "- web\n", nil, "must be a mapping"},
		{"instances not a list", "instances: web\n", nil, "instances must be a list"},
		{"bad ttl", "- {name: web, address: 10.0.0.1, port: 80, ttl: soon}\n", nil, `"soon" is not a duration`},
		{"bad port", "- {name: web, address: 10.0.0.1, port: 0}\n", nil, "entry 1 (line 1): port"},
		{"bad health", "- {name: web, address: 10.0.0.1, port: 80, health: fine}\n", nil, `health "fine"`},
		{"dot id", "- {id: '..', name: web, address: 10.0.0.1, port: 80}\n", nil, `".." is not allowed`},
		{"single instance", `{"id":"c","name":"web","address":"10.0.0.1","port":80,"health":"critical","node":"n1","expires":"2026-01-02T03:04:05Z"}`, []string{"c"}, ""},
		{"printed yaml", "- id: d\n  name: web\n  address: 10.0.0.1\n  port: 80\n  tags:\n    - v2\n  meta:\n    version: \"2\"\n  weight: 5\n  ttl: 10s\n  health: passing\n  expires: 2026-01-02T03:04:05Z\n", []string{"d"}, ""},
		{"null instances", "instances:\n", nil, "no instances"},
		{"empty", "", nil, "no instances"},
		{"garbage", "{{{", nil, "batch.yaml"},
		{"second document", "- {name: web, address: 10.0.0.1, port: 80}\n---\n- {name: api, address: 10.0.0.1, port: 81}\n", nil, "line 2: a second YAML document"},
		{"second document after an empty one", "---\n---\n- {name: api, address: 10.0.0.1, port: 81}\n", nil, "line 2: a second YAML document"},
		{"broken second document", "- {name: web, address: 10.0.0.1, port: 80}\n---\n{{{\n", nil, "batch.yaml: yaml: line"},
		{"leading document marker", "---\n- {name: web, address: 10.0.0.1, port: 80}\n", []string{"web-10.0.0.1-80"}, ""},
		{"trailing document marker", "- {name: web, address: 10.0.0.1, port: 80}\n---\n", []string{"web-10.0.0.1-80"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			insts, err := parseBatch("batch.yaml", []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, registry.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, in := range insts {
				ids = append(ids, in.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
				t.Fatalf("ids %v, want %v", ids, tc.ids)
			}
		})
	}
}

func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("- {name: web, address: 10.0.0.1, port: 80}\n"))
	f.Add([]byte(`{"instances":[{"id":"b","name":"web","address":"::1","port":80,"meta":{"k":"v"}}]}`))
	f.Add([]byte("instances:\n  - name: x\n    ttl: 1s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		insts, err := parseBatch("fuzz", data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, in := range insts {
			if err := in.Validate(); err != nil {
				t.Fatalf("accepted an invalid instance %+v: %v", in, err)
			}
		}
	})
}
