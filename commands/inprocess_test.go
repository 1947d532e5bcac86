package commands

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/internal/builtin"
	"github.com/sdctl/sdctl/registry"
)

// TestCommandsInProcess runs commands with the file backend in the test's own process, through
// Factory.NewRegistry: command behaviour is testable without a plugin subprocess.
func TestCommandsInProcess(t *testing.T) {
	sandbox(t)
	path := filepath.Join(t.TempDir(), "registry.json")
	run := func(stdin string, args ...string) result {
		t.Helper()
		var out, errOut bytes.Buffer
		f := &Factory{IO: &IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, Builtins: builtin.Backends(), Bundled: builtin.Bundled()}
		f.NewRegistry = func(context.Context) (registry.Registry, error) { return file.New(map[string]any{"path": path}) }
		code := Run(context.Background(), f, args)
		return result{out.String(), errOut.String(), code}
	}
	for _, step := range []struct {
		stdin  string
		args   string
		code   int
		stdout string
		stderr string
	}{
		{"", "register service-web 10.0.0.1:3000 --tag v1", 0, "service-web-10.0.0.1-3000\n", ""},
		{"- {name: service-web, address: 10.0.0.2, port: 3000, weight: 0}\n- {name: api, address: 10.0.0.3, port: 80}\n", "register -f -", 0, "service-web-10.0.0.2-3000\napi-10.0.0.3-80\n", ""},
		{"", "resolve service-web", 0, "10.0.0.1:3000\n", ""}, // the other one is drained
		{"", "resolve service-web --all", 0, "10.0.0.1:3000\n10.0.0.2:3000\n", ""},
		{"", "resolve servce-web", 3, "", "sdctl: resolve servce-web: no such service; did you mean service-web?\n"},
		{"", "catalog", 0, "api\t1\t1\t\nservice-web\t2\t2\tv1\n", ""},
		{"", "deregister api 10.0.0.3:80", 0, "", ""},
		{"", "deregister api 10.0.0.3:80", 3, "", ""},
		{"", "catalog api", 3, "", "sdctl: catalog api: service has no instances\n"},
	} {
		r := run(step.stdin, strings.Fields(step.args)...)
		if r.code != step.code || (step.stdout != "" && r.stdout != step.stdout) || (step.stderr != "" && r.stderr != step.stderr) {
			t.Errorf("sdctl %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr %q",
				step.args, r.code, r.stdout, r.stderr, step.code, step.stdout, step.stderr)
		}
	}
}

// TestEveryCommandHandsItsOptionsToRunF checks the anatomy every command follows: flags parse
// into an Options value, which a test can capture through runF without running anything.
func TestEveryCommandHandsItsOptionsToRunF(t *testing.T) {
	f := &Factory{}
	var got []string
	for _, tc := range []struct {
		cmd  *cobra.Command
		args []string
	}{
		{newClusterCmd(f, capturing(&got, func(o *ClusterStatusOptions) string { return "cluster status " + o.Output })), []string{"status", "-o", "json"}},
		{newConfigCmd(f, capturing(&got, func(o *ConfigViewOptions) string { return "config view " + o.Template })), []string{"view", "--template", "{{.Key}}"}},
		{newVersionCmd(f, capturing(&got, func(o *VersionOptions) string { return "version " + o.Output })), []string{"-o", "yaml"}},
		{newBackendCmd(f, capturing(&got, func(o *BackendListOptions) string { return "backend list " + o.Output }), nil), []string{"list", "-o", "table"}},
		{newBackendCmd(f, nil, capturing(&got, func(o *BackendStopOptions) string { return "backend stop " + o.Name })), []string{"stop", "consul"}},
		{newWatchCmd(f, capturing(&got, func(o *WatchOptions) string { return "watch " + o.URI })), []string{"consul://127.0.0.1:8500"}},
		{newRegisterCmd(f, capturing(&got, func(o *RegisterOptions) string {
			return fmt.Sprintf("register %s %s ttl %s", o.Name, o.HostPort, o.TTL)
		})), []string{"web", "10.0.0.1:80", "--ttl", "30s"}},
		{newDeregisterCmd(f, capturing(&got, func(o *DeregisterOptions) string {
			return fmt.Sprintf("deregister %s %t", o.ID, o.IgnoreMissing)
		})), []string{"web", "10.0.0.1:80", "--ignore-missing"}},
		{newResolveCmd(f, capturing(&got, func(o *ResolveOptions) string {
			return fmt.Sprintf("resolve %s %s %t", o.Target.Name, o.Strategy, o.IncludeWarning)
		})), []string{"http://service-web/x", "--strategy", "random", "--include-warning"}},
		{newCatalogCmd(f, capturing(&got, func(o *CatalogOptions) string {
			return fmt.Sprintf("catalog %s %v %s", o.Name, o.Tags, o.Output)
		})), []string{"web", "--tag", "v1", "-o", "json"}},
	} {
		tc.cmd.SetArgs(tc.args)
		tc.cmd.SetOut(io.Discard)
		if err := tc.cmd.Execute(); err != nil {
			t.Errorf("%s %v: %v", tc.cmd.Name(), tc.args, err)
		}
	}
	want := []string{"cluster status json", "config view {{.Key}}", "version yaml", "backend list table", "backend stop consul", "watch consul://127.0.0.1:8500",
		"register web 10.0.0.1:80 ttl 30s", "deregister web-10.0.0.1-80 true", "resolve service-web random true", "catalog web [v1] json"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("captured %q, want %q", got, want)
	}
}

// capturing is a runF that appends describe's account of the options it is given to got.
func capturing[O any](got *[]string, describe func(*O) string) func(context.Context, *O) error {
	return func(_ context.Context, o *O) error {
		*got = append(*got, describe(o))
		return nil
	}
}
