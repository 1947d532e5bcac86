package consul

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
)

// open returns a backend on the given addresses, closed by t.Cleanup. edit adjusts the
// options before they are applied.
func open(t *testing.T, edit func(*Options), addrs ...string) *Backend {
	t.Helper()
	opts := DefaultOptions()
	opts.Address = addrs
	if edit != nil {
		edit(&opts)
	}
	b, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%v): %v", addrs, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// devBackend starts a dev agent for a test that is skipped with -short and runs in parallel,
// and opens a backend on it whose calls are bounded by d.
func devBackend(t *testing.T, d time.Duration) (*consultest.Agent, *Backend, context.Context) {
	t.Helper()
	skipShort(t, "starts a Consul server")
	t.Parallel()
	a := consultest.StartDev(t)
	return a, open(t, nil, a.HTTPAddr), testCtx(t, d)
}

// skipShort skips a test that starts servers when the tests run with -short.
func skipShort(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
}

// poll is how often the tests poll Consul for a state they wait for.
const poll = 50 * time.Millisecond

// testCtx bounds a test's calls so a hang fails the test rather than the whole run.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// apiCall sends one request to the agent with its token and decodes a 2xx answer into out (when
// not nil); other statuses fail the test.
func apiCall(t *testing.T, a *consultest.Agent, method, path string, body any, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	resp, err := a.Request(method, path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

func ids(insts []registry.Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.ID
	}
	return out
}
