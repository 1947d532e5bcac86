package harness_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
)

func TestHTTPProxy(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "backend "+r.URL.Path)
	}))
	defer backend.Close()
	p, err := harness.NewHTTPProxy(backend.URL, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Serve(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		return testutil.HTTPGet(t, "http://"+p.Addr+path)
	}

	if code, body := get("/v1/a"); code != http.StatusOK || body != "backend /v1/a" {
		t.Errorf("forwarded GET /v1/a: %d %q", code, body)
	}
	p.SetFailing(true)
	if code, _ := get("/v1/a"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/a while failing: %d, want 503", code)
	}
	p.SetFailing(false)
	get("/v1/b")
	if n := p.Count("GET /v1/a"); n != 2 {
		t.Errorf("Count(GET /v1/a) = %d, want 2 (forwarded and failed alike)", n)
	}
	if got, want := p.Take(), map[string]int{"GET /v1/a": 2, "GET /v1/b": 1}; !maps.Equal(got, want) {
		t.Errorf("Take() = %v, want %v", got, want)
	}
	if got := p.Take(); len(got) != 0 {
		t.Errorf("Take() after Take() = %v, want nothing", got)
	}
}
