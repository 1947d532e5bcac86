package consultest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TLSFiles are PEM files made by GenerateTLS: a CA, a server certificate signed by it and a
// client certificate signed by it.
type TLSFiles struct {
	CAFile         string // the CA certificate
	CertFile       string // server certificate: 127.0.0.1, ::1, localhost, server.dc1.consul
	KeyFile        string // server key
	ClientCertFile string // client certificate (CN sdctl-test-client)
	ClientKeyFile  string // client key
}

// GenerateTLS writes a fresh ECDSA P-256 CA, server certificate and client certificate into a
// t.TempDir(). The server certificate is valid for the agent's HTTPS listener (127.0.0.1,
// localhost) and for Consul's server RPC name in dc1 (server.dc1.consul), and can act as a
// client too, as Consul servers need for verify_outgoing.
func GenerateTLS(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca, err := testutil.NewCA(dir, "sdctl test CA")
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	server, err := ca.Issue(dir, "server.dc1.consul", "server.dc1.consul", "localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	client, err := ca.Issue(dir, "sdctl-test-client")
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return TLSFiles{
		CAFile: ca.CertFile, CertFile: server.CertFile, KeyFile: server.KeyFile,
		ClientCertFile: client.CertFile, ClientKeyFile: client.KeyFile,
	}
}

// ClientConfig returns a TLS client configuration that trusts the CA and, when withCert is
// true, presents the client certificate.
func (f TLSFiles) ClientConfig(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	cfg, err := f.clientConfig(withCert)
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return cfg
}

func (f TLSFiles) clientConfig(withCert bool) (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &os.PathError{Op: "parse CA", Path: f.CAFile, Err: os.ErrInvalid}
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
