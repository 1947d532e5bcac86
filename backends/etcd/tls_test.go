package etcd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
)

// TestTLS runs against a member that serves TLS only and requires client certificates.
func TestTLS(t *testing.T) {
	t.Parallel()
	m, files := etcdtest.StartTLS(t)
	ctx := ctxFor(t, time.Minute)
	withCert := Options{CAFile: files.CAFile, CertFile: files.CertFile, KeyFile: files.KeyFile}

	t.Run("ClientCertificate", func(t *testing.T) {
		b := open(t, withCert, nil, m)
		inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 443}
		if err := b.Register(ctx, inst); err != nil {
			t.Fatalf("Register over TLS: %v", err)
		}
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil || len(got) != 1 {
			t.Fatalf("Instances = %v, %v", got, err)
		}
		st, err := b.ClusterStatus(ctx)
		if err != nil || st.Leader == "" || st.Members[0].Health != healthHealthy {
			t.Fatalf("ClusterStatus over TLS = %+v, %v", st, err)
		}
	})

	t.Run("EndpointWithoutScheme", func(t *testing.T) {
		// host:port with TLS files set uses TLS, as with etcdctl.
		opts := withCert
		opts.Endpoints = []string{strings.TrimPrefix(m.ClientURL, "https://")}
		b := open(t, opts, nil)
		if _, err := b.Services(ctx); err != nil {
			t.Fatalf("Services via %s: %v", opts.Endpoints[0], err)
		}
	})

	// failsWith checks that a client configured with opts cannot use the member, and that it
	// says so within a few seconds with one of the kinds.
	failsWith := func(t *testing.T, opts Options, want string, kinds ...error) {
		t.Helper()
		opts.Endpoints = []string{m.ClientURL}
		opts.DialTimeout = 2 * time.Second
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		b, err := Open(cctx, opts, nil)
		if err == nil {
			defer b.Close()
			_, err = b.Instances(cctx, registry.Query{Name: "web"})
		}
		if err == nil {
			t.Fatal("the member accepted the client")
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		ok := false
		for _, k := range kinds {
			ok = ok || errors.Is(err, k)
		}
		if !ok {
			t.Errorf("error %v wraps none of %v", err, kinds)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	t.Run("NoClientCertificate", func(t *testing.T) {
		failsWith(t, Options{CAFile: files.CAFile}, "certificate", registry.ErrUnavailable, registry.ErrPermissionDenied)
	})

	t.Run("UntrustedServer", func(t *testing.T) {
		other, err := etcdtest.NewCA(t.TempDir(), "another CA")
		if err != nil {
			t.Fatal(err)
		}
		opts := withCert
		opts.CAFile = other.CertFile
		failsWith(t, opts, "certificate", registry.ErrUnavailable)
	})

	t.Run("BadFiles", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			opts  Options
			field string
		}{
			{"MissingCA", Options{CAFile: "/nonexistent/ca.pem"}, "ca-file"},
			{"CAIsNotPEM", Options{CAFile: files.KeyFile + ".nope"}, "ca-file"},
			{"CertWithoutKey", Options{CertFile: files.CertFile}, "key-file"},
			{"KeyWithoutCert", Options{KeyFile: files.KeyFile}, "cert-file"},
			{"KeyDoesNotMatch", Options{CertFile: files.CertFile, KeyFile: files.CAFile}, "cert-file"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.opts.Endpoints = []string{m.ClientURL}
				_, err := Open(ctx, tc.opts, nil)
				var fe *registry.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("Open: %v, want a FieldError for %s", err, tc.field)
				}
			})
		}
	})
}
