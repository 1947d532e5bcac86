package watch

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Metrics are the watcher's counters and gauges, served in the Prometheus text format (0.0.4)
// by Handler. They are written by hand rather than with a metrics library: a dozen series do not
// justify the start-up cost a library adds to every sdctl process. Tests parse the output with
// Prometheus's own parser.
//
// Each series is a typed handle declared in NewMetrics, so a misspelt metric is a compile
// error rather than a series that is silently never written.
type Metrics struct {
	mu       sync.Mutex
	families []*family

	registrations   counter
	deregistrations counter
	failures        counterVec // by op
	skipped         counter
	events          counterVec // by action
	instances       gauge
	containers      gauge
	pending         gauge
	reconcileTime   histogram
	reconcileWrites gauge
	reconciles      counterVec // by reason
	eventLag        histogram
	dockerUp        gauge
	registryUp      gauge
	pluginRestarts  counter
	heartbeats      counter
	registryLost    counter
	retries         counter
}

// family is one metric name with its values per label value ("" when it has no label).
type family struct {
	mu               *sync.Mutex
	name, help, kind string
	label            string
	values           map[string]float64
	hist             map[string]*buckets
}

type buckets struct {
	counts []uint64
	sum    float64
	count  uint64
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics declares every series, so a scrape shows them all from the start. Each is
// documented in docs/watch.md.
func NewMetrics() *Metrics {
	m := &Metrics{}
	m.registrations = counter{m.declare("sdctl_watch_registrations_total", "counter", "", "Instances registered (added or updated) in the registry.")}
	m.deregistrations = counter{m.declare("sdctl_watch_deregistrations_total", "counter", "", "Instances removed from the registry.")}
	m.failures = counterVec{m.declare("sdctl_watch_failures_total", "counter", "op", "Failed operations, by operation (register, deregister, heartbeat, inspect, list, events, reconcile).")}
	m.skipped = counter{m.declare("sdctl_watch_metadata_skipped_total", "counter", "", "Container metadata (SERVICE_* keys, or checks the backend does not run) skipped because it was invalid.")}
	m.events = counterVec{m.declare("sdctl_watch_docker_events_total", "counter", "action", "Docker events received, by action.")}
	m.instances = gauge{m.declare("sdctl_watch_instances", "gauge", "", "Instances this node has registered.")}
	m.containers = gauge{m.declare("sdctl_watch_containers", "gauge", "", "Running containers seen at the last reconcile.")}
	m.pending = gauge{m.declare("sdctl_watch_pending_containers", "gauge", "", "Containers whose registry changes wait for a retry.")}
	m.reconcileTime = histogram{m.declare("sdctl_watch_reconcile_duration_seconds", "histogram", "", "Time a full reconcile took.")}
	m.reconcileWrites = gauge{m.declare("sdctl_watch_reconcile_writes", "gauge", "", "Registry writes made by the last reconcile.")}
	m.reconciles = counterVec{m.declare("sdctl_watch_reconciles_total", "counter", "reason", "Reconciles run, by reason (start, resync, docker-reconnect, plugin-restart, retry, queue-overflow, registry-back, registry-changed, instance-missing).")}
	m.eventLag = histogram{m.declare("sdctl_watch_event_lag_seconds", "histogram", "", "Time from a Docker event to the registry reflecting it.")}
	m.dockerUp = gauge{m.declare("sdctl_watch_docker_connected", "gauge", "", "1 while the Docker event stream is connected.")}
	m.registryUp = gauge{m.declare("sdctl_watch_registry_up", "gauge", "", "1 while the last registry call succeeded.")}
	m.pluginRestarts = counter{m.declare("sdctl_watch_plugin_restarts_total", "counter", "", "Times the backend plugin process was restarted.")}
	m.heartbeats = counter{m.declare("sdctl_watch_heartbeats_total", "counter", "", "TTL heartbeats sent.")}
	m.registryLost = counter{m.declare("sdctl_watch_registry_changed_total", "counter", "", "Times the registry's change stream showed this node's instances missing, changed or unknown to the watcher (each starts a reconcile).")}
	m.retries = counter{m.declare("sdctl_watch_retries_total", "counter", "", "Retries of a container's sync run after a failure.")}
	// Counters without labels read 0 from the start rather than being absent.
	for _, c := range []counter{m.registrations, m.deregistrations, m.skipped, m.registryLost, m.retries} {
		c.add(0)
	}
	m.failures.f.set("", 0)
	return m
}

func (m *Metrics) declare(name, kind, label, help string) *family {
	f := &family{mu: &m.mu, name: name, help: help, kind: kind, label: label,
		values: map[string]float64{}, hist: map[string]*buckets{}}
	m.families = append(m.families, f)
	return f
}

func (f *family) set(labelValue string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[labelValue] = v
}

func (f *family) add(labelValue string, delta float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[labelValue] += delta
}

// counter is a series that only goes up.
type counter struct{ f *family }

func (c counter) inc()              { c.f.add("", 1) }
func (c counter) add(delta float64) { c.f.add("", delta) }

// counterVec is a counter with one label.
type counterVec struct{ f *family }

func (c counterVec) inc(labelValue string) { c.f.add(labelValue, 1) }

// gauge is a series that is set.
type gauge struct{ f *family }

func (g gauge) set(v float64) { g.f.set("", v) }

func (g gauge) value() float64 {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	return g.f.values[""]
}

// histogram counts observations in latencyBuckets.
type histogram struct{ f *family }

func (h histogram) observe(v float64) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	b := h.f.hist[""]
	if b == nil {
		b = &buckets{counts: make([]uint64, len(latencyBuckets))}
		h.f.hist[""] = b
	}
	for i, bound := range latencyBuckets {
		if v <= bound {
			b.counts[i]++
		}
	}
	b.sum += v
	b.count++
}

// WriteTo writes every series in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, f := range m.families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		if f.kind == "histogram" {
			for _, k := range sortedKeys(f.hist) {
				h := f.hist[k]
				for i, bound := range latencyBuckets {
					fmt.Fprintf(&b, "%s_bucket{%s} %d\n", f.name, f.labels(k, `le="`+formatFloat(bound)+`"`), h.counts[i])
				}
				fmt.Fprintf(&b, "%s_bucket{%s} %d\n", f.name, f.labels(k, `le="+Inf"`), h.count)
				fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, braces(f.labels(k, "")), formatFloat(h.sum))
				fmt.Fprintf(&b, "%s_count%s %d\n", f.name, braces(f.labels(k, "")), h.count)
			}
			continue
		}
		for _, k := range sortedKeys(f.values) {
			fmt.Fprintf(&b, "%s%s %s\n", f.name, braces(f.labels(k, "")), formatFloat(f.values[k]))
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// labels renders the family's label with value v (none when v is empty) followed by extra.
func (f *family) labels(v, extra string) string {
	var parts []string
	if f.label != "" && v != "" {
		parts = append(parts, f.label+`="`+strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)+`"`)
	}
	if extra != "" {
		parts = append(parts, extra)
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func braces(k string) string {
	if k == "" {
		return ""
	}
	return "{" + k + "}"
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Handler serves /metrics and /healthz. healthz answers 200 while ready() is nil and 503 with
// the reason otherwise.
func (m *Metrics) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = m.WriteTo(w) // a scraper that went away needs no answer
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
