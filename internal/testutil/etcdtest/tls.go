package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	server, err := ca.Issue(dir, "server", true)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	client, err := ca.Issue(dir, "client", false)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
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

// CA is a certificate authority made for a test.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM string // path of the CA certificate
}

// NewCA creates a CA and writes its certificate to a new ca-*.pem file in dir, so one
// directory can hold several (a test of a client trusting the wrong CA needs two).
func NewCA(dir, commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "ca-*.pem")
	if err != nil {
		return nil, err
	}
	err = pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, CertPEM: f.Name()}, nil
}

// Issue signs a certificate for name (a server certificate for 127.0.0.1 and localhost, or a
// client certificate) and writes it and its key under dir.
func (ca *CA) Issue(dir, name string, server bool) (TLSFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return TLSFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return TLSFiles{}, err
	}
	files := TLSFiles{
		CAFile:   ca.CertPEM,
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
	if err := os.WriteFile(files.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return TLSFiles{}, err
	}
	if err := os.WriteFile(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return TLSFiles{}, err
	}
	return files, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}
