package harness

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// ConsulTLSFiles are PEM files made by GenerateConsulTLS: a CA, a server certificate signed by
// it and a client certificate signed by it.
type ConsulTLSFiles struct {
	CAFile         string // the CA certificate
	CertFile       string // server certificate: 127.0.0.1, ::1, localhost, server.dc1.consul
	KeyFile        string // server key
	ClientCertFile string // client certificate (CN sdctl-test-client)
	ClientKeyFile  string // client key
}

// GenerateConsulTLS writes a fresh ECDSA P-256 CA, server certificate and client certificate
// into dir. The server certificate is valid for the agent's HTTPS listener (127.0.0.1,
// localhost) and for Consul's server RPC name in dc1 (server.dc1.consul), and can act as a
// client too, as Consul servers need for verify_outgoing.
func GenerateConsulTLS(dir string) (ConsulTLSFiles, error) {
	ca, err := NewCA(dir, "sdctl test CA")
	if err != nil {
		return ConsulTLSFiles{}, err
	}
	server, err := ca.Issue(dir, "server.dc1.consul", "server.dc1.consul", "localhost", "127.0.0.1", "::1")
	if err != nil {
		return ConsulTLSFiles{}, err
	}
	client, err := ca.Issue(dir, "sdctl-test-client")
	if err != nil {
		return ConsulTLSFiles{}, err
	}
	return ConsulTLSFiles{
		CAFile: ca.CertFile, CertFile: server.CertFile, KeyFile: server.KeyFile,
		ClientCertFile: client.CertFile, ClientKeyFile: client.KeyFile,
	}, nil
}

// ClientConfig returns a TLS client configuration that trusts the CA and, when withCert is
// true, presents the client certificate.
func (f ConsulTLSFiles) ClientConfig(withCert bool) (*tls.Config, error) {
	pool, err := certPool(f.CAFile)
	if err != nil {
		return nil, err
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

// certPool is a pool holding the certificates of the PEM file caFile.
func certPool(caFile string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &os.PathError{Op: "parse CA", Path: caFile, Err: os.ErrInvalid}
	}
	return pool, nil
}
