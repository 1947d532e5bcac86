package watch_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/sdctl/sdctl/internal/watch"
)

// TestMetricsMatchDocs parses a fresh exposition with Prometheus's own parser and checks that
// it serves exactly the series docs/watch.md lists, with the documented types.
func TestMetricsMatchDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/watch.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `(sdctl_watch_[a-z_]+)(?:\\{[a-z]+\\})?` \\| ([a-z]+) \\|")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	if len(documented) == 0 {
		t.Fatal("docs/watch.md lists no metrics")
	}

	var body strings.Builder
	if _, err := watch.NewMetrics().WriteTo(&body); err != nil {
		t.Fatal(err)
	}
	var p expfmt.TextParser
	if _, err := p.TextToMetricFamilies(strings.NewReader(body.String())); err != nil {
		t.Fatalf("not valid Prometheus text format: %v\n%s", err, body.String())
	}
	// Series without a sample yet are declared by their TYPE line only.
	served := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body.String(), -1) {
		served[m[1]] = m[2]
	}
	for name, kind := range served {
		if want, ok := documented[name]; !ok {
			t.Errorf("%s is served but not documented in docs/watch.md", name)
		} else if kind != want {
			t.Errorf("%s is a %s, docs/watch.md says %s", name, kind, want)
		}
	}
	for name := range documented {
		if _, ok := served[name]; !ok {
			t.Errorf("%s is documented but not served", name)
		}
	}
}
