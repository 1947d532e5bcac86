package main

// Warm backends: `sdctl resolve` on the file backend next to a Go hello-world program, and
// `sdctl register`/`deregister` on Consul and etcd next to curl sending the same write.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sdctl/sdctl/internal/harness"
)

// targetInit bounds the package initialisation of the host that runs `resolve`.
const targetInit = 1500 * time.Microsecond

// Targets for the warm file backend, in multiples of a Go hello-world's p50.
const (
	targetHelloSmall = 3.0 // resolve, 10 instances
	targetHelloLarge = 5.0 // resolve, 10,000 instances of one service
)

// helloSource is the program the file backend's resolve is compared with: the cheapest Go
// process that prints a line.
const helloSource = `package main

import "fmt"

func main() { fmt.Println("hello, world") }
`

// buildHello builds the hello-world program into the workspace, statically like sdctl.
func buildHello(ctx context.Context, ws *workspace) (string, error) {
	dir := filepath.Join(ws.root, "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloSource), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build hello: %v\n%s", err, out)
	}
	return bin, nil
}

// measureWarmFile times a Go hello-world and `sdctl resolve web` with the file backend kept warm
// (the default) against the registries of 10 and of 10,000 instances of web, taking turns.
func measureWarmFile(ctx context.Context, ws *workspace, regs []*registryCase, cfg *config) ([]*series, error) {
	hello, err := buildHello(ctx, ws)
	if err != nil {
		return nil, err
	}
	invs := []invocation{{label: "Go hello-world (`fmt.Println`, static, stripped)", path: hello, sc: regs[0].sc}}
	var warm []*registryCase
	for _, rc := range regs {
		if rc.services == 1 {
			warm = append(warm, rc)
			inv := ws.sdctlCmd(rc.sc, "`sdctl resolve web` (warm backend, the default), "+rc.label, "resolve", "web")
			inv.env = []string{warmEnv}
			invs = append(invs, inv)
		}
	}
	out, err := timeInterleaved(ctx, invs, cfg.n, cfg.warmup)
	for _, rc := range warm {
		stop := ws.sdctlCmd(rc.sc, "stop", "backend", "stop")
		stop.env = []string{warmEnv}
		if _, serr := stop.command(ctx).Output(); serr != nil && err == nil {
			err = fmt.Errorf("sdctl backend stop: %w", serr)
		}
	}
	return out, err
}

func (r *report) warmFileTargets(w func(string, ...any)) {
	if len(r.warmFile) < 3 {
		return
	}
	for i, target := range []float64{targetHelloSmall, targetHelloLarge} {
		s := r.warmFile[i+1]
		ratio, ok := p50Ratio(s, r.warmFile[0])
		w("| %s p50 ≤ %.0f× a Go hello-world | %s vs %s: %.2f× | %s |\n", s.label, target,
			ms(summarize(s.wall).p50), ms(summarize(r.warmFile[0].wall).p50), ratio, passFail(ok && ratio <= target))
	}
}

func (r *report) writeWarmFile(b *bytes.Buffer) {
	r.writeRatioSection(b, r.warmFile, "1b. `sdctl resolve web` with a warm file backend, next to a Go hello-world",
		fmt.Sprintf("The default since warm backends: the first command starts the file backend, the next ones connect to it (see docs/concepts.md, \"Warm backends\"). %d timed runs per command after %d warm-up runs (which also start the backends), taking turns; the warm backends are stopped afterwards. The hello-world program is built by the bench with the same Go and flags as sdctl; ratios are to its p50.",
			r.cfg.n, r.cfg.warmup))
}

// writeRatioSection writes a section whose table divides each p50 by the first row's.
func (r *report) writeRatioSection(b *bytes.Buffer, rows []*series, title, intro string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "### %s\n\n%s\n\n", title, intro)
	r.writeRatios(b, rows, rows[0], "÷ hello-world")
}

// writeRatios writes rows like writeSeries, with each p50 divided by base's.
func (r *report) writeRatios(b *bytes.Buffer, rows []*series, base *series, what string) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("| Command | Runs | p50 | p90 | p99 | mean | CPU/run (user+sys) | p50 %s |\n|---|--:|--:|--:|--:|--:|--:|--:|\n", what)
	bs := summarize(base.wall)
	for _, s := range rows {
		sum := summarize(s.wall)
		runs := runsCell(sum.n, s.failures)
		ratio := "—"
		if bs.p50 > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(sum.p50)/float64(bs.p50))
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.label, runs, ms(sum.p50), ms(sum.p90), ms(sum.p99), ms(sum.mean), ms(mean(s.cpu)), ratio)
	}
	for _, s := range rows {
		if s.failure != "" {
			w("\nFirst failure of %s: `%s`\n", s.label, s.failure)
		}
	}
	w("\n")
}

// writeID is the instance the write comparison registers and deregisters, and its port.
const (
	writeService = "bench-write"
	writeID      = "bench-write-1"
	writePort    = "4000"
)

// measureWrites times `sdctl register` and `sdctl deregister` of one instance (warm backend)
// next to curl sending the same write to the server's HTTP API, taking turns, so that each
// round leaves the registry as it found it.
func (b *backendCase) measureWrites(ctx context.Context, ws *workspace, cfg *config) error {
	if b.curl == "" {
		return nil
	}
	reg := b.sdctl(ws, "`sdctl --backend "+b.kind+" register "+writeService+" 127.0.0.1:"+writePort+" --id "+writeID+"` (warm)",
		"register", writeService, "127.0.0.1:"+writePort, "--id", writeID)
	dereg := b.sdctl(ws, "`sdctl --backend "+b.kind+" deregister "+writeID+"` (warm)", "deregister", writeID)
	reg.env, dereg.env = []string{warmEnv}, []string{warmEnv}
	var curlReg, curlDereg invocation
	switch b.kind {
	case "consul":
		body := fmt.Sprintf(`{"ID":"%s-curl","Name":"%s","Address":"127.0.0.1","Port":%s}`, writeID, writeService, writePort)
		curlReg = invocation{label: "`curl -s -X PUT http://ADDR/v1/agent/service/register -d '" + body + "'`", path: b.curl,
			args: []string{"-s", "-f", "-X", "PUT", "http://" + b.srv.addr + "/v1/agent/service/register", "-d", body}, sc: b.sc}
		curlDereg = invocation{label: "`curl -s -X PUT http://ADDR/v1/agent/service/deregister/" + writeID + "-curl`", path: b.curl,
			args: []string{"-s", "-f", "-X", "PUT", "http://" + b.srv.addr + "/v1/agent/service/deregister/" + writeID + "-curl"}, sc: b.sc}
	case "etcd":
		key := b64("/services/" + writeService + "/" + writeID + "-curl")
		value := b64(fmt.Sprintf(`{"id":"%s-curl","name":"%s","address":"127.0.0.1","port":%s}`, writeID, writeService, writePort))
		put := fmt.Sprintf(`{"key":"%s","value":"%s"}`, key, value)
		del := fmt.Sprintf(`{"key":"%s"}`, key)
		curlReg = invocation{label: "`curl -s -X POST http://ADDR/v3/kv/put -d '{\"key\":…,\"value\":…}'`", path: b.curl,
			args: []string{"-s", "-f", "-X", "POST", "http://" + b.srv.addr + "/v3/kv/put", "-d", put}, sc: b.sc}
		curlDereg = invocation{label: "`curl -s -X POST http://ADDR/v3/kv/deleterange -d '{\"key\":…}'`", path: b.curl,
			args: []string{"-s", "-f", "-X", "POST", "http://" + b.srv.addr + "/v3/kv/deleterange", "-d", del}, sc: b.sc}
	}
	var err error
	b.writes, err = timeInterleaved(ctx, []invocation{reg, curlReg, dereg, curlDereg}, cfg.n, cfg.warmup)
	stop := b.sdctl(ws, "stop", "backend", "stop")
	stop.env = []string{warmEnv}
	if _, serr := stop.command(ctx).Output(); serr != nil && err == nil {
		err = fmt.Errorf("sdctl backend stop: %w", serr)
	}
	return err
}

func (r *report) writeWrites(b *bytes.Buffer, bc *backendCase, num int) {
	if len(bc.writes) != 4 {
		return
	}
	fmt.Fprintf(b, "#### %d.4 `register` and `deregister` next to curl\n\n", num)
	fmt.Fprintf(b, "One instance registered and deregistered again in each round, by sdctl (warm backend) and by curl sending the same write to %s's HTTP API (its own instance, so the two never collide), taking turns: %d timed rounds after %d warm-up rounds. sdctl validates the instance, writes it%s and waits for the server's acknowledgement. Ratios are sdctl's p50 to curl's for the same operation.\n\n",
		bc.title, r.cfg.n, r.cfg.warmup, map[string]string{"consul": " to the agent (with its ownership metadata)", "etcd": " (a JSON value under the service's prefix)"}[bc.kind])
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("| Command | Runs | p50 | p90 | p99 | mean | CPU/run (user+sys) | sdctl p50 ÷ curl p50 |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, s := range bc.writes {
		sum := summarize(s.wall)
		runs := runsCell(sum.n, s.failures)
		ratio := ""
		if i%2 == 0 {
			if rr, ok := p50Ratio(s, bc.writes[i+1]); ok {
				ratio = fmt.Sprintf("%.2f×", rr)
			}
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.label, runs, ms(sum.p50), ms(sum.p90), ms(sum.p99), ms(sum.mean), ms(mean(s.cpu)), ratio)
	}
	for _, s := range bc.writes {
		if s.failure != "" {
			w("\nFirst failure of %s: `%s`\n", s.label, s.failure)
		}
	}
	w("\n")
}

// linkStep is one program of the link-cost ladder: hello-world with more of sdctl's
// dependencies linked in (blank imports: only their package initialisation runs).
type linkStep struct {
	label   string
	imports []string
}

var linkLadder = []linkStep{
	{"hello-world", nil},
	{"+ cobra, viper (the CLI and its configuration)", []string{"github.com/spf13/cobra", "github.com/spf13/viper"}},
	{"+ sdctl's protocol without gRPC (plugins/host: what sdctl links to reach warm backends)", []string{"github.com/spf13/cobra", "github.com/spf13/viper", "github.com/sdctl/sdctl/plugins/host"}},
	{"+ gRPC and sdctl's gRPC service (what sdctl-plugin-host adds)", []string{"github.com/spf13/cobra", "github.com/spf13/viper", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc"}},
	{"+ go-plugin (to start backends)", []string{"github.com/spf13/cobra", "github.com/spf13/viper", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc", "github.com/hashicorp/go-plugin"}},
	{"+ the Docker client (what sdctl-watch adds)", []string{"github.com/spf13/cobra", "github.com/spf13/viper", "google.golang.org/grpc", "github.com/sdctl/sdctl/plugins/proto/rpc", "github.com/hashicorp/go-plugin", "github.com/docker/docker/client"}},
}

// measureLinkCost builds the link-cost ladder inside sdctl's module (through a build overlay, so
// that nothing is written into the source tree) and times each program next to `sdctl
// version`, taking turns: what a process pays for what it links before it does anything.
func measureLinkCost(ctx context.Context, ws *workspace, sc *scenario, cfg *config) ([]*series, error) {
	root, err := harness.ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(ws.root, "linkcost")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var invs []invocation
	for i, step := range linkLadder {
		var src strings.Builder
		src.WriteString("package main\n\nimport (\n\t\"fmt\"\n")
		for _, imp := range step.imports {
			fmt.Fprintf(&src, "\t_ %q\n", imp)
		}
		src.WriteString(")\n\nfunc main() { fmt.Println(\"hello, world\") }\n")
		file := filepath.Join(dir, fmt.Sprintf("main%d.go", i))
		if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
			return nil, err
		}
		virtual := filepath.Join(root, "internal", "linkcost", fmt.Sprint(i), "main.go")
		overlay, err := json.Marshal(map[string]map[string]string{"Replace": {virtual: file}})
		if err != nil {
			return nil, err
		}
		ovPath := filepath.Join(dir, fmt.Sprintf("overlay%d.json", i))
		if err := os.WriteFile(ovPath, overlay, 0o644); err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, fmt.Sprintf("prog%d", i))
		cmd := exec.CommandContext(ctx, "go", "build", "-overlay", ovPath, "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/linkcost/"+fmt.Sprint(i))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", step.label, err, out)
		}
		invs = append(invs, invocation{label: step.label + ": " + binSize(bin), path: bin, sc: sc})
	}
	invs = append(invs, ws.sdctlCmd(sc, "`sdctl version`: "+binSize(ws.sdctl), "version"))
	return timeInterleaved(ctx, invs, cfg.startN, cfg.warmup)
}

func (r *report) writeLinkCost(b *bytes.Buffer) {
	r.writeRatioSection(b, r.linkCost, "2b. What linking costs a process",
		fmt.Sprintf("Every Go package linked into a program initialises in every process of it, used or not, and a larger program takes longer to load. Each row is a hello-world program with more of sdctl's dependencies linked in by blank imports (built by the bench inside sdctl's module with the same Go and flags as sdctl), next to `sdctl version`, which connects to nothing: %d timed runs each after %d warm-up runs, taking turns. Ratios are to the hello-world's p50. The rows bound what any sdctl command can cost: one that talks to a backend links at least the third row.",
			r.cfg.startN, r.cfg.warmup))
}
