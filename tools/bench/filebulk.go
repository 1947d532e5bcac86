package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// fileBulkResult is `sdctl register -f` of many instances on the file backend, next to one
// `sdctl register` of a single instance into the registry that batch produced.
type fileBulkResult struct {
	instances int
	runs      []time.Duration // register -f into an empty registry
	single    []time.Duration // register of one more instance into the full registry
	failures  []string
}

// fileBulkTarget is the goal for 10,000 instances.
const fileBulkTarget = 2 * time.Second

// measureFileBulk registers cfg.fileBulkN instances with one `register -f`, runs times, each
// into a fresh registry, and checks that the file then holds them all.
func measureFileBulk(ctx context.Context, ws *workspace, cfg *config) (*fileBulkResult, error) {
	res := &fileBulkResult{instances: cfg.fileBulkN}
	type entry struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Port    int    `json:"port"`
	}
	entries := make([]entry, cfg.fileBulkN)
	for i := range entries {
		entries[i] = entry{Name: fmt.Sprintf("svc-%d", i%100), Address: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), Port: 8080}
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	for run := 1; run <= cfg.fileBulkRuns; run++ {
		sc, err := ws.newScenario(fmt.Sprintf("file-bulk-%d", run))
		if err != nil {
			return nil, err
		}
		batch := filepath.Join(sc.dir, "batch.json")
		if err := os.WriteFile(batch, data, 0o600); err != nil {
			return nil, err
		}
		r := ws.sdctlCmd(sc, "register -f", "register", "-f", batch).run(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !r.ok() {
			res.failures = append(res.failures, r.failure())
			continue
		}
		if n := bytes.Count(r.stdout, []byte("\n")); n != cfg.fileBulkN {
			res.failures = append(res.failures, fmt.Sprintf("run %d printed %d IDs", run, n))
			continue
		}
		doc, err := readRegistry(sc.registry)
		if err != nil || len(doc.Instances) != cfg.fileBulkN {
			res.failures = append(res.failures, fmt.Sprintf("run %d: the file holds %d instances (%v)", run, len(doc.Instances), err))
			continue
		}
		res.runs = append(res.runs, r.wall)
		one := ws.sdctlCmd(sc, "register", "register", "extra", fmt.Sprintf("127.0.0.1:%d", 20000+run)).run(ctx)
		if !one.ok() {
			res.failures = append(res.failures, one.failure())
			continue
		}
		res.single = append(res.single, one.wall)
		progress("  register -f of %d instances, run %d: %s; one more register: %s", cfg.fileBulkN, run, r.wall.Round(time.Millisecond), one.wall.Round(time.Millisecond))
	}
	return res, nil
}

func (r *report) writeFileBulk(b *bytes.Buffer) {
	res := r.fileBulk
	if res == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### 4b. Bulk registration on the file backend\n\n")
	w("`sdctl register -f batch.json` with %d instances (100 services) into an empty registry file, %d runs, each on a fresh file: one plugin call (protocol 1.1 `RegisterBatch`) and one rewrite of the file. After each run the file must hold every instance; then one `sdctl register` of a single instance into that full registry is timed for comparison (it rewrites the same file once).\n\n", res.instances, len(res.runs)+len(res.failures))
	if len(res.runs) > 0 {
		bulk, single := summarize(res.runs), summarize(res.single)
		w("| Measured | Runs | p50 | max | Instances/s (p50) | p50 vs one register | p50 vs the %s target |\n|---|--:|--:|--:|--:|--:|--:|\n", fileBulkTarget)
		w("| `register -f` of %d instances | %d | %s | %s | %.0f | %.1f× | %.2f× |\n", res.instances, len(res.runs), ms(bulk.p50), ms(bulk.max),
			float64(res.instances)/bulk.p50.Seconds(), float64(bulk.p50)/float64(single.p50), float64(bulk.p50)/float64(fileBulkTarget))
		w("| one `register` into that registry | %d | %s | %s | | 1.0× | |\n", len(res.single), ms(single.p50), ms(single.max))
	}
	for _, f := range res.failures {
		w("\nFailure: `%s`\n", f)
	}
	w("\n")
}
