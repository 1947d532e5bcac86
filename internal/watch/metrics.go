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
	"time"
)

// Metrics are the watcher's counters and gauges, served in the Prometheus text format (0.0.4)
// by Handler. They are written by hand rather than with a metrics library: a dozen series do not
// justify the start-up cost a library adds to every sdctl process.
type Metrics struct {
	mu     sync.Mutex
	series map[string]*family
	order  []string
}

type family struct {
	name, help, kind string
	values           map[string]float64 // label set ("" or `k="v",...`) → value
	hist             map[string]*histogram
}

type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
	count  uint64
}

// Metric names. Each is documented in docs/watch.md.
const (
	mRegistrations   = "sdctl_watch_registrations_total"
	mDeregistrations = "sdctl_watch_deregistrations_total"
	mFailures        = "sdctl_watch_failures_total"
	mSkipped         = "sdctl_watch_metadata_skipped_total"
	mEvents          = "sdctl_watch_docker_events_total"
	mInstances       = "sdctl_watch_instances"
	mContainers      = "sdctl_watch_containers"
	mPending         = "sdctl_watch_pending_containers"
	mReconcile       = "sdctl_watch_reconcile_duration_seconds"
	mReconcileWrites = "sdctl_watch_reconcile_writes"
	mReconciles      = "sdctl_watch_reconciles_total"
	mEventLag        = "sdctl_watch_event_lag_seconds"
	mDockerUp        = "sdctl_watch_docker_connected"
	mRegistryUp      = "sdctl_watch_registry_up"
	mPluginRestarts  = "sdctl_watch_plugin_restarts_total"
	mHeartbeats      = "sdctl_watch_heartbeats_total"
	mRegistryLost    = "sdctl_watch_registry_changed_total"
	mRetries         = "sdctl_watch_retries_total"
)

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics declares every series, so a scrape shows them all from the start.
func NewMetrics() *Metrics {
	m := &Metrics{series: map[string]*family{}}
	m.declare(mRegistrations, "counter", "Instances registered (added or updated) in the registry.")
	m.declare(mDeregistrations, "counter", "Instances removed from the registry.")
	m.declare(mFailures, "counter", "Failed operations, by operation (register, deregister, heartbeat, inspect, list, events, reconcile).")
	m.declare(mSkipped, "counter", "Container metadata (SERVICE_* keys, or checks the backend does not run) skipped because it was invalid.")
	m.declare(mEvents, "counter", "Docker events received, by action.")
	m.declare(mInstances, "gauge", "Instances this node has registered.")
	m.declare(mContainers, "gauge", "Running containers seen at the last reconcile.")
	m.declare(mPending, "gauge", "Containers whose registry changes wait for a retry.")
	m.declare(mReconcile, "histogram", "Time a full reconcile took.")
	m.declare(mReconcileWrites, "gauge", "Registry writes made by the last reconcile.")
	m.declare(mReconciles, "counter", "Reconciles run, by reason (start, resync, docker-reconnect, plugin-restart, retry, queue-overflow, registry-back, registry-changed, instance-missing).")
	m.declare(mEventLag, "histogram", "Time from a Docker event to the registry reflecting it.")
	m.declare(mDockerUp, "gauge", "1 while the Docker event stream is connected.")
	m.declare(mRegistryUp, "gauge", "1 while the last registry call succeeded.")
	m.declare(mPluginRestarts, "counter", "Times the backend plugin process was restarted.")
	m.declare(mHeartbeats, "counter", "TTL heartbeats sent.")
	m.declare(mRegistryLost, "counter", "Times the registry's change stream showed this node's instances missing, changed or unknown to the watcher (each starts a reconcile).")
	m.declare(mRetries, "counter", "Retries of a container's sync run after a failure.")
	m.Set(mFailures, 0)
	m.Set(mRegistrations, 0)
	m.Set(mDeregistrations, 0)
	m.Set(mSkipped, 0)
	m.Set(mRegistryLost, 0)
	m.Set(mRetries, 0)
	return m
}

func (m *Metrics) declare(name, kind, help string) {
	m.series[name] = &family{name: name, help: help, kind: kind, values: map[string]float64{}, hist: map[string]*histogram{}}
	m.order = append(m.order, name)
}

// labels renders label pairs ("k", "v", ...) in the exposition syntax.
func labels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// Add increases a counter (or gauge) by delta.
func (m *Metrics) Add(name string, delta float64, kv ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.series[name]; f != nil {
		f.values[labels(kv...)] += delta
	}
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64, kv ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.series[name]; f != nil {
		f.values[labels(kv...)] = v
	}
}

// Observe records one value in a histogram.
func (m *Metrics) Observe(name string, v float64, kv ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.series[name]
	if f == nil {
		return
	}
	key := labels(kv...)
	h := f.hist[key]
	if h == nil {
		h = &histogram{bounds: latencyBuckets, counts: make([]uint64, len(latencyBuckets))}
		f.hist[key] = h
	}
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.count++
}

// Value reads a counter or gauge (for tests and logs).
func (m *Metrics) Value(name string, kv ...string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.series[name]; f != nil {
		return f.values[labels(kv...)]
	}
	return 0
}

// Sum adds a counter over all its label sets.
func (m *Metrics) Sum(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s float64
	if f := m.series[name]; f != nil {
		for _, v := range f.values {
			s += v
		}
	}
	return s
}

// WriteTo writes every series in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, name := range m.order {
		f := m.series[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, f.help, name, f.kind)
		if f.kind == "histogram" {
			keys := sortedKeys(f.hist)
			for _, k := range keys {
				h := f.hist[k]
				for i, bound := range h.bounds {
					fmt.Fprintf(&b, "%s_bucket{%s} %d\n", name, joinLabels(k, `le="`+formatFloat(bound)+`"`), h.counts[i])
				}
				fmt.Fprintf(&b, "%s_bucket{%s} %d\n", name, joinLabels(k, `le="+Inf"`), h.count)
				fmt.Fprintf(&b, "%s_sum%s %s\n", name, braces(k), formatFloat(h.sum))
				fmt.Fprintf(&b, "%s_count%s %d\n", name, braces(k), h.count)
			}
			continue
		}
		for _, k := range sortedKeys(f.values) {
			fmt.Fprintf(&b, "%s%s %s\n", name, braces(k), formatFloat(f.values[k]))
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinLabels(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
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

func seconds(d time.Duration) float64 { return d.Seconds() }
