package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sdctl/sdctl/backends/etcd/etcdopts"
	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = etcdopts.Name

// Defaults, as etcdctl has them.
const (
	DefaultEndpoint    = etcdopts.DefaultEndpoint
	DefaultDialTimeout = etcdopts.DefaultDialTimeout
	DefaultPrefix      = etcdopts.DefaultPrefix
)

// Options configures the etcd backend; the keys are those of the "etcd" config section.
type Options struct {
	// Endpoints are the client URLs of the cluster's members ("host:port", "http://host:port",
	// "https://host:port"); DefaultEndpoint when empty.
	Endpoints []string `mapstructure:"endpoints"`
	// Username logs in with etcd's authentication; "user:password" also sets Password, as
	// etcdctl's --user does.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// CAFile verifies the servers' certificates; CertFile and KeyFile are the client's.
	CAFile   string `mapstructure:"ca-file"`
	CertFile string `mapstructure:"cert-file"`
	KeyFile  string `mapstructure:"key-file"`
	// DialTimeout bounds connecting (and logging in) to the cluster.
	DialTimeout time.Duration `mapstructure:"dial-timeout"`
	// Prefix is the key prefix instances live under: <prefix>/<name>/<id>.
	Prefix string `mapstructure:"prefix"`
	// Version is what Info reports when the backend is used in process; through the plugin
	// protocol the plugin entry's version is reported. It is set by the program that embeds
	// the backend, not by configuration.
	Version string `mapstructure:"-"`
}

// OptionSchema documents the keys of the "etcd" config section (see package etcdopts, which
// the host reads without linking this package).
func OptionSchema() []registry.Option { return etcdopts.Schema() }

// resolve validates opts and fills in defaults.
func (opts Options) resolve() (Options, error) {
	var eps []string
	for _, ep := range opts.Endpoints {
		// "a, b" in a config file or variable means two endpoints, not " b".
		for _, e := range strings.Split(ep, ",") {
			if e = strings.TrimSpace(e); e != "" {
				eps = append(eps, e)
			}
		}
	}
	if len(eps) == 0 {
		eps = []string{DefaultEndpoint}
	}
	for _, ep := range eps {
		if err := validEndpoint(ep); err != nil {
			return opts, err
		}
	}
	opts.Endpoints = eps

	if user, pass, ok := strings.Cut(opts.Username, ":"); ok {
		if opts.Password != "" && opts.Password != pass {
			return opts, registry.Invalidf("username", "holds a password (USER:PASSWORD) and password is set as well; set only one")
		}
		opts.Username, opts.Password = user, pass
	}
	switch {
	case opts.Username == "" && opts.Password != "":
		return opts, registry.Invalidf("password", "is set but username is not")
	case opts.Username != "" && opts.Password == "":
		return opts, registry.Invalidf("password", "user %q has no password: set password or give username as USER:PASSWORD", opts.Username)
	}

	switch {
	case opts.DialTimeout == 0:
		opts.DialTimeout = DefaultDialTimeout
	case opts.DialTimeout < 0:
		return opts, registry.Invalidf("dial-timeout", "%s is negative", opts.DialTimeout)
	}

	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if opts.Prefix == "" {
		return opts, registry.Invalidf("prefix", "%q leaves no prefix; use a key prefix such as %s", "/", DefaultPrefix)
	}

	return opts, nil
}

func validEndpoint(ep string) error {
	host := ep
	if scheme, rest, ok := strings.Cut(ep, "://"); ok {
		switch scheme {
		case "http", "https":
		case "unix", "unixs":
			return nil
		default:
			return registry.Invalidf("endpoints", "%q: scheme %q is not http or https", ep, scheme)
		}
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return registry.Invalidf("endpoints", "%q is not a URL like %s://host:port", ep, scheme)
		}
		host = rest
	}
	if _, _, err := registry.ParseHostPort(strings.TrimSuffix(host, "/")); err != nil {
		return registry.Invalidf("endpoints", "%q is not HOST:PORT or a URL", ep)
	}
	return nil
}

// tlsConfig builds the client's TLS configuration from the files; nil when none is set, in
// which case https:// endpoints use the system's roots.
func (opts Options) tlsConfig() (*tls.Config, error) {
	if opts.CAFile == "" && opts.CertFile == "" && opts.KeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, registry.Invalidf("ca-file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, registry.Invalidf("ca-file", "%s holds no PEM certificate", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case opts.CertFile != "" && opts.KeyFile == "":
		return nil, registry.Invalidf("key-file", "cert-file is set but key-file is not")
	case opts.CertFile == "" && opts.KeyFile != "":
		return nil, registry.Invalidf("cert-file", "key-file is set but cert-file is not")
	case opts.CertFile != "":
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, registry.Invalidf("cert-file", "%s with %s: %v", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// describe names the cluster in messages: "etcd 127.0.0.1:2379" or "etcd [a, b, c]".
func (opts Options) describe() string {
	if len(opts.Endpoints) == 1 {
		return "etcd " + opts.Endpoints[0]
	}
	return fmt.Sprintf("etcd [%s]", strings.Join(opts.Endpoints, ", "))
}
