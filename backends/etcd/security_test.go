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

// TestAuth runs against a member with authentication on and a user whose role covers the
// /services prefix only.
func TestAuth(t *testing.T) {
	t.Parallel()
	m, rootPassword := etcdtest.StartAuth(t)
	a := m.Auth
	ctx := ctxFor(t, time.Minute)
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second}

	// secretFree fails if err's message carries a password.
	secretFree := func(t *testing.T, err error) {
		t.Helper()
		for _, pw := range []string{a.Password, rootPassword, "wrong-password"} {
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error message carries a password: %v", err)
			}
		}
	}

	t.Run("AllowedPrefix", func(t *testing.T) {
		b := open(t, Options{Username: a.User, Password: a.Password, Prefix: a.Prefix}, nil, m)
		if err := b.Register(ctx, inst); err != nil {
			t.Fatalf("Register under %s: %v", a.Prefix, err)
		}
		if err := b.Heartbeat(ctx, inst.ID); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil || len(got) != 1 {
			t.Fatalf("Instances = %v, %v", got, err)
		}
		st, err := b.ClusterStatus(ctx)
		if err != nil || st.Leader == "" {
			t.Fatalf("ClusterStatus = %+v, %v", st, err)
		}
		if err := b.Deregister(ctx, inst.ID); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
	})

	t.Run("UserPasswordInUsername", func(t *testing.T) {
		// etcdctl's --user USER:PASSWORD form, as ETCDCTL_USER may hold it.
		b := open(t, Options{Username: a.User + ":" + a.Password, Prefix: a.Prefix}, nil, m)
		if _, err := b.Services(ctx); err != nil {
			t.Fatalf("Services: %v", err)
		}
	})

	t.Run("OutsidePrefix", func(t *testing.T) {
		b := open(t, Options{Username: a.User, Password: a.Password, Prefix: "/elsewhere"}, nil, m)
		for what, err := range map[string]error{
			"Register":  b.Register(ctx, inst),
			"Instances": second(b.Instances(ctx, registry.Query{Name: "web"})),
			"Services":  second(b.Services(ctx)),
			"Watch":     b.Watch(ctx, registry.WatchRequest{}, func(registry.Event) error { return nil }),
		} {
			if !errors.Is(err, registry.ErrPermissionDenied) {
				t.Errorf("%s outside the role's prefix: %v, want ErrPermissionDenied", what, err)
				continue
			}
			secretFree(t, err)
			t.Logf("%s: %v", what, err)
			if !strings.Contains(err.Error(), a.User) || !strings.Contains(err.Error(), "/elsewhere") {
				t.Errorf("%s: message %q should name the user and the key", what, err)
			}
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		_, err := Open(ctx, Options{Endpoints: []string{m.ClientURL}, Username: a.User, Password: "wrong-password", DialTimeout: 5 * time.Second}, nil)
		if !errors.Is(err, registry.ErrPermissionDenied) {
			t.Fatalf("Open with a wrong password: %v, want ErrPermissionDenied", err)
		}
		secretFree(t, err)
		t.Log(err)
		if !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), a.User) {
			t.Errorf("message %q should say authentication failed for user %s", err, a.User)
		}
	})

	t.Run("NoCredentials", func(t *testing.T) {
		b := open(t, Options{Prefix: a.Prefix}, nil, m)
		_, err := b.Instances(ctx, registry.Query{Name: "web"})
		if !errors.Is(err, registry.ErrPermissionDenied) {
			t.Fatalf("Instances without credentials: %v, want ErrPermissionDenied", err)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "requires authentication") || !strings.Contains(err.Error(), "no user configured") {
			t.Errorf("message %q should say no user is configured", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

// TestUnreachable: no member answers, so Open fails within the dial timeout with
// ErrUnavailable naming every endpoint.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	// Ports 1 and 2 on loopback: nothing listens there, so connections are refused at once.
	eps := []string{"127.0.0.1:1", "http://127.0.0.1:2"}
	start := time.Now()
	_, err := Open(context.Background(), Options{Endpoints: eps, DialTimeout: 500 * time.Millisecond}, nil)
	elapsed := time.Since(start)
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Open: %v, want ErrUnavailable", err)
	}
	for _, ep := range eps {
		if !strings.Contains(err.Error(), ep) {
			t.Errorf("message %q does not name endpoint %s", err, ep)
		}
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("message %q does not say why", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Open took %v with a dial timeout of 500ms", elapsed)
	}
	t.Log(err)

	// The caller's context ends the wait before the dial timeout does.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = Open(ctx, Options{Endpoints: eps, DialTimeout: time.Minute}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Open with a 200ms context: %v after %v, want the context's error at once", err, time.Since(start))
	}
}

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
