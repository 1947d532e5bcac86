package watch_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/common/expfmt"
	"github.com/sdctl/sdctl/internal/watch"
)

func httpPost(url string) (int, error) {
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func containerStopNow() container.StopOptions {
	zero := 0
	return container.StopOptions{Timeout: &zero}
}

// checkExposition parses body with Prometheus's own text parser.
func checkExposition(t *testing.T, body string) {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text format: %v", err)
	}
	if len(fams) < 10 {
		t.Errorf("/metrics has %d families", len(fams))
	}
}

// metricValue reads the sample of a counter or gauge whose label has the value label, or that
// has no label when label is empty. A name the watcher does not declare fails the test; a
// sample it has not written yet reads 0.
func metricValue(t *testing.T, m *watch.Metrics, name, label string) float64 {
	t.Helper()
	var body strings.Builder
	if _, err := m.WriteTo(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body.String(), "\n# TYPE "+name+" ") {
		t.Fatalf("no metric %s", name)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body.String()))
	if err != nil {
		t.Fatalf("metrics are not valid Prometheus text format: %v", err)
	}
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel()) == 0 && label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

// announced lists the delays that the log lines starting with msg announce ("in=…"), in order.
func announced(t *testing.T, logs, msg string) []time.Duration {
	t.Helper()
	var ds []time.Duration
	for _, m := range regexp.MustCompile(`(?m)`+regexp.QuoteMeta(msg)+`: .* in=(\S+)$`).FindAllStringSubmatch(logs, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("%q announces %q: %v", msg, m[1], err)
		}
		ds = append(ds, d)
	}
	return ds
}

// metricSum reads a counter or gauge from the exposition, added over its label values; a name
// the watcher does not serve fails the test.
func metricSum(t *testing.T, m *watch.Metrics, name string) float64 {
	t.Helper()
	var body strings.Builder
	if _, err := m.WriteTo(&body); err != nil {
		t.Fatal(err)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body.String()))
	if err != nil {
		t.Fatalf("metrics are not valid Prometheus text format: %v", err)
	}
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		default:
			t.Fatalf("metric %s is neither a counter nor a gauge", name)
		}
	}
	return sum
}
