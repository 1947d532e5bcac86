package consultest_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
)

func TestDevAgent(t *testing.T) {
	t.Parallel()
	a := consultest.StartDev(t)

	var leader string
	get(t, a, "/v1/status/leader", &leader)
	if leader != a.ServerAddr {
		t.Errorf("leader %q, want %q", leader, a.ServerAddr)
	}
	out, err := a.Consul(t, "catalog", "services")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "consul") {
		t.Errorf("consul catalog services = %q, want the consul service", out)
	}

	// DNS answers on DNSAddr: the consul service's SRV record points at the server port.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, a.DNSAddr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, "", "", "consul.service.consul")
	if err != nil {
		t.Fatalf("SRV consul.service.consul at %s: %v", a.DNSAddr, err)
	}
	if len(srvs) != 1 || strconv.Itoa(int(srvs[0].Port)) != port(a.ServerAddr) {
		t.Errorf("SRV records %+v, want one on port %s", srvs, port(a.ServerAddr))
	}

	// Restart keeps ports and data: a service registered before is still there after.
	put(t, a, "/v1/agent/service/register", `{"ID": "web-1", "Name": "web", "Port": 3000}`, "", http.StatusOK)
	a.Restart(t)
	var svc map[string][]string
	get(t, a, "/v1/catalog/services", &svc)
	if _, ok := svc["web"]; !ok {
		t.Errorf("after Restart the catalog holds %v, want web", svc)
	}

	a.Stop()
	if a.Running() {
		t.Error("agent still running after Stop")
	}
}

func TestClusterLeaderLoss(t *testing.T) {
	t.Parallel()
	start := time.Now()
	agents := consultest.StartCluster(t, 3)
	t.Logf("3-server cluster ready in %s", time.Since(start).Round(time.Millisecond))

	old := consultest.Leader(t, agents...)
	for _, a := range agents {
		var peers []string
		get(t, a, "/v1/status/peers", &peers)
		if len(peers) != 3 {
			t.Errorf("%s lists raft peers %v, want 3", a.Name, peers)
		}
	}

	killed := time.Now()
	old.Kill()
	var rest []*consultest.Agent
	for _, a := range agents {
		if a != old {
			rest = append(rest, a)
		}
	}
	leader := consultest.Leader(t, rest...)
	elapsed := time.Since(killed)
	if leader == old {
		t.Fatalf("leader is still the killed %s", old.Name)
	}
	t.Logf("killed leader %s; %s took over after %s", old.Name, leader.Name, elapsed.Round(time.Millisecond))

	// The killed server comes back on its ports and data dir and rejoins. (Raft without pre-vote
	// lets a returning server force a new election, so who leads afterwards is not asserted.)
	old.Restart(t)
	leader = consultest.Leader(t, agents...)
	out, err := leader.Consul(t, "members")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "alive"); n != 3 {
		t.Errorf("consul members lists %d alive servers, want 3:\n%s", n, out)
	}
}

func TestACLAgent(t *testing.T) {
	t.Parallel()
	a, token := consultest.StartACL(t)
	if token == "" || a.Token != token {
		t.Fatalf("token %q, agent token %q", token, a.Token)
	}
	const reg = `{"Node": "ext-1", "Address": "10.0.0.1", "Service": {"Service": "web", "Port": 80}}`
	put(t, a, "/v1/catalog/register", reg, "anonymous", http.StatusForbidden)
	put(t, a, "/v1/catalog/register", reg, token, http.StatusOK)

	out, err := a.Consul(t, "catalog", "services")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "web") {
		t.Errorf("consul catalog services with the token = %q, want web", out)
	}
}

func TestTLSAgent(t *testing.T) {
	t.Parallel()
	for _, verify := range []bool{false, true} {
		t.Run("verifyIncoming="+strconv.FormatBool(verify), func(t *testing.T) {
			t.Parallel()
			a, files := consultest.StartTLS(t, verify)
			if a.HTTPAddr != "" || !strings.HasPrefix(a.URL(), "https://") {
				t.Fatalf("HTTPAddr %q, URL %q: want HTTPS only", a.HTTPAddr, a.URL())
			}
			var leader string
			get(t, a, "/v1/status/leader", &leader)
			if leader != a.ServerAddr {
				t.Errorf("leader %q, want %q", leader, a.ServerAddr)
			}
			if _, err := a.Consul(t, "catalog", "services"); err != nil {
				t.Errorf("consul CLI over HTTPS: %v", err)
			}

			// Without a client certificate.
			noCertConfig, err := files.ClientConfig(false)
			if err != nil {
				t.Fatal(err)
			}
			noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: noCertConfig}}
			defer noCert.CloseIdleConnections()
			resp, err := noCert.Get(a.URL() + "/v1/status/leader")
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case verify && err == nil:
				t.Errorf("a client without a certificate got %s, want a TLS failure", resp.Status)
			case !verify && err != nil:
				t.Errorf("a client without a certificate: %v", err)
			}

			// Without the CA the server is not trusted.
			untrusted := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer untrusted.CloseIdleConnections()
			if resp, err := untrusted.Get(a.URL() + "/v1/status/leader"); err == nil {
				resp.Body.Close()
				t.Errorf("a client without the CA got %s, want a certificate error", resp.Status)
			}
		})
	}
}

// get GETs path from a and decodes the JSON answer into out.
func get(t *testing.T, a *consultest.Agent, path string, out any) {
	t.Helper()
	resp, err := a.Request(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := decode(resp.Body, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// put PUTs body to path with token ("" for a.Token, "anonymous" for none) and checks the status.
func put(t *testing.T, a *consultest.Agent, path, body, token string, want int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, a.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch token {
	case "":
		if a.Token != "" {
			req.Header.Set("X-Consul-Token", a.Token)
		}
	case "anonymous":
	default:
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := a.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("PUT %s (token %q): %s: %s, want status %d", path, token, resp.Status, msg, want)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func decode(r io.Reader, out any) error {
	return json.NewDecoder(r).Decode(out)
}
