package consul

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/consultest"
	"github.com/sdctl/sdctl/registry"
)

func TestACL(t *testing.T) {
	skipShort(t, "starts a Consul server")
	t.Parallel()
	a, mgmt := consultest.StartACL(t)
	ctx := testCtx(t, 60*time.Second)
	web := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000, TTL: time.Minute}
	withToken := func(tok string) func(*Options) { return func(o *Options) { o.Token = tok } }

	// noSecret fails when err is not a permission error or shows a token.
	denied := func(t *testing.T, what string, err error, tokens ...string) {
		t.Helper()
		if !errors.Is(err, registry.ErrPermissionDenied) {
			t.Fatalf("%s: %v, want ErrPermissionDenied", what, err)
		}
		for _, tok := range append(tokens, mgmt) {
			if strings.Contains(err.Error(), tok) {
				t.Errorf("%s: the error shows a token: %v", what, err)
			}
		}
	}

	anon := open(t, nil, a.HTTPAddr)
	err := anon.Register(ctx, web)
	denied(t, "Register without a token", err)
	if !strings.Contains(err.Error(), "no ACL token is set") {
		t.Errorf("Register without a token: %v does not say that no token is set", err)
	}

	wrong := uuid(t)
	denied(t, "Register with an unknown token", open(t, withToken(wrong), a.HTTPAddr).Register(ctx, web), wrong)

	admin := open(t, withToken(mgmt), a.HTTPAddr)
	if err := admin.Register(ctx, web); err != nil {
		t.Fatalf("Register with the management token: %v", err)
	}
	if err := admin.Heartbeat(ctx, "web-1"); err != nil {
		t.Fatalf("Heartbeat with the management token: %v", err)
	}
	insts, err := admin.Instances(ctx, registry.Query{Name: "web", HealthyOnly: true})
	if err != nil || len(insts) != 1 {
		t.Fatalf("Instances with the management token: %v %v", insts, err)
	}

	// Consul hides what a token may not read. Without a token it gives no sign of it (so as
	// not to reveal what exists), so the answer is empty; with a token it says it filtered,
	// and an empty answer is a permission error rather than "no instances".
	if insts, err := anon.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(insts) != 0 {
		t.Errorf("Instances without a token: %v %v, want an empty answer", insts, err)
	}
	denied(t, "Heartbeat without a token", anon.Heartbeat(ctx, "web-1"))
	denied(t, "Deregister without a token", anon.Deregister(ctx, "web-1"))

	// operator:read alone: no services, but the whole raft configuration and autopilot.
	op := policyToken(t, a, `operator = "read"`)
	ob := open(t, withToken(op), a.HTTPAddr)
	_, err = ob.Instances(ctx, registry.Query{Name: "web"})
	denied(t, "Instances with an operator token", err, op)
	_, err = ob.Services(ctx)
	denied(t, "Services with an operator token", err, op)
	st, err := ob.ClusterStatus(ctx)
	if err != nil {
		t.Fatalf("ClusterStatus with an operator token: %v", err)
	}
	if st.Leader != a.Name || len(st.Members) != 1 || st.Members[0].Details["voter"] != "true" ||
		st.Members[0].Details["autopilot"] == "" || !strings.Contains(strings.Join(st.Notes, "\n"), "node:read") {
		t.Errorf("ClusterStatus with an operator token: %+v", st)
	}

	// Services and nodes, but not the operator API.
	reader := policyToken(t, a, `service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }`)
	rb := open(t, withToken(reader), a.HTTPAddr)
	if insts, err := rb.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(insts) != 1 {
		t.Errorf("Instances with a read token: %v %v", insts, err)
	}
	denied(t, "Register with a read token", rb.Register(ctx, web), reader)
	st, err = rb.ClusterStatus(ctx)
	if err != nil {
		t.Fatalf("ClusterStatus with a read token: %v", err)
	}
	notes := strings.Join(st.Notes, "\n")
	if st.Leader != a.Name || len(st.Members) != 1 || st.Members[0].Name != a.Name || st.Members[0].Health != "alive" ||
		st.Members[0].Version != "1.14.11" || !strings.Contains(notes, "/v1/status/peers") || !strings.Contains(notes, "autopilot") {
		t.Errorf("ClusterStatus with a read token: %+v", st)
	}

	// A declared health needs nothing beyond what registering needs: setting its check's status
	// is allowed by service:write too.
	writer := policyToken(t, a, `service "api" { policy = "write" }`)
	api1 := registry.Instance{ID: "api-1", Name: "api", Address: "10.0.0.2", Port: 3000, Health: registry.HealthCritical}
	if err := open(t, withToken(writer), a.HTTPAddr).Register(ctx, api1); err != nil {
		t.Fatalf("Register with declared health and a service:write token: %v", err)
	}
	if insts, err := admin.Instances(ctx, registry.Query{Name: "api"}); err != nil || len(insts) != 1 || insts[0].Health != registry.HealthCritical {
		t.Errorf("Instances(api) after a declared critical: %+v %v", insts, err)
	}

	// Without any token: the leader and peers need no ACL; names and health are unknown.
	st, err = anon.ClusterStatus(ctx)
	if err != nil {
		t.Fatalf("ClusterStatus without a token: %v", err)
	}
	if st.Leader != a.ServerAddr || len(st.Members) != 1 || st.Members[0].Address != a.ServerAddr {
		t.Errorf("ClusterStatus without a token: %+v", st)
	}

	// The token file, as CONSUL_HTTP_TOKEN_FILE gives it.
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(mgmt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fb, err := New(map[string]any{"address": a.HTTPAddr, "token-file": file, "token": wrong}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	if err := fb.Deregister(ctx, "web-1"); err != nil {
		t.Fatalf("Deregister with the token from token-file: %v", err)
	}
}

// policyToken creates a token with one policy made of rules.
func policyToken(t *testing.T, a *consultest.Agent, rules string) string {
	t.Helper()
	var policy struct{ ID string }
	apiCall(t, a, http.MethodPut, "/v1/acl/policy", map[string]string{"Name": "p-" + uuid(t)[:8], "Rules": rules}, &policy)
	var token struct{ SecretID string }
	apiCall(t, a, http.MethodPut, "/v1/acl/token", map[string]any{"Policies": []map[string]string{{"ID": policy.ID}}}, &token)
	return token.SecretID
}

func uuid(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func TestTLS(t *testing.T) {
	skipShort(t, "starts Consul servers")
	t.Parallel()
	web := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000}
	works := func(t *testing.T, b *Backend) {
		t.Helper()
		ctx := testCtx(t, 30*time.Second)
		if err := b.Register(ctx, web); err != nil {
			t.Fatalf("Register: %v", err)
		}
		if insts, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil || len(insts) != 1 {
			t.Fatalf("Instances: %v %v", insts, err)
		}
	}
	fails := func(t *testing.T, b *Backend, want string) {
		t.Helper()
		_, err := b.Services(testCtx(t, 30*time.Second))
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("Services: %v, want ErrUnavailable saying %q", err, want)
		}
	}

	t.Run("ServerCertificate", func(t *testing.T) {
		t.Parallel()
		a, files := consultest.StartTLS(t, false)
		url := "https://" + a.HTTPSAddr
		works(t, open(t, func(o *Options) { o.CAFile = files.CAFile }, url))
		// ca-path: a directory of CA files; ssl turns a bare address into https.
		dir := t.TempDir()
		copyFile(t, files.CAFile, filepath.Join(dir, "ca.pem"))
		works(t, open(t, func(o *Options) { o.CAPath, o.SSL = dir, true }, a.HTTPSAddr))
		// ssl-verify=false (CONSUL_HTTP_SSL_VERIFY=false) accepts the unknown CA.
		works(t, open(t, func(o *Options) { o.SSLVerify = false }, url))

		fails(t, open(t, nil, url), "unknown authority")
		fails(t, open(t, func(o *Options) { o.CAFile, o.TLSServerName = files.CAFile, "other.example" }, url), "tls-server-name")
		fails(t, open(t, nil, "http://"+a.HTTPSAddr), "https://")
	})

	t.Run("ClientCertificate", func(t *testing.T) {
		t.Parallel()
		a, files := consultest.StartTLS(t, true)
		url := "https://" + a.HTTPSAddr
		fails(t, open(t, func(o *Options) { o.CAFile = files.CAFile }, url), "client certificate")
		works(t, open(t, func(o *Options) {
			o.CAFile, o.ClientCert, o.ClientKey = files.CAFile, files.ClientCertFile, files.ClientKeyFile
		}, url))
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
