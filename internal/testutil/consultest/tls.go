package consultest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	now := time.Now()

	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "sdctl test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("consultest: create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("consultest: parse CA: %v", err)
	}

	leaf := func(tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl.SerialNumber = serial(t)
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.Add(48 * time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("consultest: create certificate %s: %v", tmpl.Subject.CommonName, err)
		}
		return der, key
	}
	serverDER, serverKey := leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "server.dc1.consul"},
		DNSNames:    []string{"server.dc1.consul", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	clientDER, clientKey := leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "sdctl-test-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})

	f := TLSFiles{
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	writePEM(t, f.CAFile, "CERTIFICATE", caDER)
	writePEM(t, f.CertFile, "CERTIFICATE", serverDER)
	writePEM(t, f.KeyFile, "EC PRIVATE KEY", marshalKey(t, serverKey))
	writePEM(t, f.ClientCertFile, "CERTIFICATE", clientDER)
	writePEM(t, f.ClientKeyFile, "EC PRIVATE KEY", marshalKey(t, clientKey))
	return f
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

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("consultest: generate key: %v", err)
	}
	return key
}

func marshalKey(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("consultest: marshal key: %v", err)
	}
	return der
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("consultest: serial number: %v", err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("consultest: %v", err)
	}
}
