package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TLSFiles are PEM files a client uses to talk to a member started by StartTLS: the CA that
// signed the server's certificate, and a client certificate with its key.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Config is a tls.Config presenting the client certificate and trusting only the CA.
func (f TLSFiles) Config() (*tls.Config, error) {
	pemCA, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("no certificate in " + f.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// StartTLS starts a single member serving clients over TLS only, with client certificates
// required (--client-cert-auth). The certificates are generated for the test: a CA, a server
// certificate for 127.0.0.1 and localhost, and the client certificate returned.
func StartTLS(t testing.TB) (*Member, TLSFiles) {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCA(dir, "sdctl test CA")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	server, err := ca.Issue(dir, "server", "127.0.0.1", "::1", "localhost")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	c, err := ca.Issue(dir, "client")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	client := TLSFiles(c)
	members := startCluster(t, 1, &clusterConfig{
		scheme: "https",
		flags: []string{
			"--cert-file", server.CertFile,
			"--key-file", server.KeyFile,
			"--trusted-ca-file", server.CAFile,
			"--client-cert-auth",
		},
		tls: &client,
	})
	return members[0], client
}

// NewCA creates a CA for a test (see testutil.NewCA).
func NewCA(dir, commonName string) (*testutil.CA, error) { return testutil.NewCA(dir, commonName) }
