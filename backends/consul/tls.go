package consul

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"

	"github.com/sdctl/sdctl/registry"
)

// tlsConfig builds the client TLS configuration from the ca-*, client-* and tls-* options.
// It returns nil when every option is at its default, so the system's roots apply.
func tlsConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         opts.TLSServerName,
		InsecureSkipVerify: !opts.SSLVerify, //nolint:gosec // the user asked for it (ssl-verify=false)
	}
	if opts.CAFile != "" || opts.CAPath != "" {
		pool := x509.NewCertPool()
		if opts.CAFile != "" {
			if err := addPEM(pool, opts.CAFile, "ca-file"); err != nil {
				return nil, err
			}
		}
		if opts.CAPath != "" {
			entries, err := os.ReadDir(opts.CAPath)
			if err != nil {
				return nil, registry.Invalidf("ca-path", "%v", err)
			}
			found := false
			for _, e := range entries {
				if e.IsDir() {
					continue
				}
				// Like Consul's go-rootcerts: every file that parses as PEM certificates counts.
				if addPEM(pool, filepath.Join(opts.CAPath, e.Name()), "ca-path") == nil {
					found = true
				}
			}
			if !found {
				return nil, registry.Invalidf("ca-path", "%s holds no PEM certificate", opts.CAPath)
			}
		}
		cfg.RootCAs = pool
	}
	if opts.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.ClientCert, opts.ClientKey)
		if err != nil {
			return nil, registry.Invalidf("client-cert", "%v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func addPEM(pool *x509.CertPool, path, key string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return registry.Invalidf(key, "%v", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return registry.Invalidf(key, "%s holds no PEM certificate", path)
	}
	return nil
}
