package consul

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sdctl/sdctl/internal/buildinfo"
	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = "consul"

const (
	defaultAddress        = "127.0.0.1:8500"
	defaultWait           = time.Minute
	defaultAttemptTimeout = 2 * time.Second
	// maxWait is the longest hold Consul grants a blocking query.
	maxWait = 10 * time.Minute
)

// Options configures the consul backend; the keys are those of the "consul" config section.
type Options struct {
	// Address lists the agents' HTTP addresses: host:port, http://host:port or
	// https://host:port. Requests go to one at a time; see the package documentation.
	Address []string `mapstructure:"address"`
	// Token is the ACL token sent as X-Consul-Token.
	Token string `mapstructure:"token"`
	// HTTPAuth is USER[:PASSWORD] for HTTP basic authentication (a proxy in front of Consul).
	HTTPAuth string `mapstructure:"http-auth"`
	// TokenFile holds the ACL token; it wins over Token, as in Consul's own tools.
	TokenFile string `mapstructure:"token-file"`
	// SSL makes addresses without a scheme use https.
	SSL bool `mapstructure:"ssl"`
	// SSLVerify checks the servers' certificates; false is for tests only.
	SSLVerify     bool   `mapstructure:"ssl-verify"`
	CAFile        string `mapstructure:"ca-file"`
	CAPath        string `mapstructure:"ca-path"`
	ClientCert    string `mapstructure:"client-cert"`
	ClientKey     string `mapstructure:"client-key"`
	TLSServerName string `mapstructure:"tls-server-name"`
	// Datacenter is the datacenter reads go to; the agent's own when empty. Registrations
	// always land in the datacenter of the agent that takes them.
	Datacenter string `mapstructure:"datacenter"`
	// Namespace and Partition are Consul Enterprise features; Consul CE refuses them.
	Namespace string `mapstructure:"namespace"`
	Partition string `mapstructure:"partition"`
	// Stale lets any server answer reads, also while the cluster elects a leader.
	Stale bool `mapstructure:"stale"`
	// Wait is how long one blocking query may wait for a change.
	Wait time.Duration `mapstructure:"wait"`
	// AttemptTimeout bounds one request to one address before the next address is tried.
	AttemptTimeout time.Duration `mapstructure:"attempt-timeout"`

	// Version is reported by Info; the build's version when empty.
	Version string `mapstructure:"-"`
	// Logger receives warnings (a watch retrying after an error); nothing is logged when nil.
	Logger *slog.Logger `mapstructure:"-"`
}

// DefaultOptions returns the options used for keys that are not set.
func DefaultOptions() Options {
	return Options{
		Address:        []string{defaultAddress},
		SSLVerify:      true,
		Stale:          true,
		Wait:           defaultWait,
		AttemptTimeout: defaultAttemptTimeout,
	}
}

// OptionSchema documents the keys of the "consul" config section and the Consul environment
// variables that set them.
func OptionSchema() []registry.Option {
	return []registry.Option{
		{Key: "address", Default: defaultAddress, List: true, Env: []string{"CONSUL_HTTP_ADDR"},
			Help: "HTTP addresses of Consul agents or servers (host:port, http://host:port, https://host:port, unix:///path; " +
				"port 8500, or 8501 for https, when left out). With several, a request that fails on one is retried " +
				"on the next, and sdctl stays on the one that answered."},
		{Key: "token", Secret: true, Env: []string{"CONSUL_HTTP_TOKEN"},
			Help: "ACL token sent with every request."},
		{Key: "http-auth", Secret: true, Env: []string{"CONSUL_HTTP_AUTH"},
			Help: "USER[:PASSWORD] for HTTP basic authentication, for a proxy in front of Consul."},
		{Key: "token-file", Env: []string{"CONSUL_HTTP_TOKEN_FILE"},
			Help: "File holding the ACL token; wins over token, as with Consul's own tools."},
		{Key: "ssl", Default: "false", Env: []string{"CONSUL_HTTP_SSL"},
			Help: "Use https for addresses given without a scheme."},
		{Key: "ssl-verify", Default: "true", Env: []string{"CONSUL_HTTP_SSL_VERIFY"},
			Help: "Verify the servers' TLS certificates. false accepts any certificate: for tests only."},
		{Key: "ca-file", Env: []string{"CONSUL_CACERT"},
			Help: "PEM file of the CA certificates that sign the servers' certificates (the system's when neither ca-file nor ca-path is set)."},
		{Key: "ca-path", Env: []string{"CONSUL_CAPATH"},
			Help: "Directory of PEM CA certificates, read besides ca-file."},
		{Key: "client-cert", Env: []string{"CONSUL_CLIENT_CERT"},
			Help: "PEM client certificate, for agents that set verify_incoming."},
		{Key: "client-key", Env: []string{"CONSUL_CLIENT_KEY"},
			Help: "PEM private key of client-cert."},
		{Key: "tls-server-name", Env: []string{"CONSUL_TLS_SERVER_NAME"},
			Help: "Name to verify in the servers' certificates instead of the host of the address."},
		{Key: "datacenter",
			Help: "Datacenter to read from (the agent's own when empty). Registrations always go to the datacenter of the agent that takes them."},
		{Key: "namespace", Env: []string{"CONSUL_NAMESPACE"},
			Help: "Namespace (Consul Enterprise)."},
		{Key: "partition", Env: []string{"CONSUL_PARTITION"},
			Help: "Admin partition (Consul Enterprise)."},
		{Key: "stale", Default: "true",
			Help: "Let any server answer reads from its own copy of the catalog, so resolve keeps working while " +
				"the cluster has no leader (as Consul DNS does). false sends reads to the leader."},
		{Key: "wait", Default: defaultWait.String(),
			Help: "Longest hold of one blocking query in watches (at most 10m); a change ends it at once."},
		{Key: "attempt-timeout", Default: defaultAttemptTimeout.String(),
			Help: "Time limit for one request to one address before the next address is tried; the last address " +
				"gets what remains of the command's --timeout."},
	}
}

// Capabilities lists what the backend supports: Consul runs HTTP, TCP and gRPC checks, TTL
// checks passed by heartbeats, weights and blocking queries. Script checks are refused.
func Capabilities() []registry.Capability {
	return []registry.Capability{
		registry.CapTTL, registry.CapWatch, registry.CapWeights, registry.CapDrain, registry.CapGRPCTLS,
		registry.CheckCapability(registry.CheckTTL),
		registry.CheckCapability(registry.CheckHTTP),
		registry.CheckCapability(registry.CheckTCP),
		registry.CheckCapability(registry.CheckGRPC),
	}
}

// New decodes the "consul" config section and opens the backend. Bad values are
// registry.FieldErrors naming the key. log may be nil.
func New(section map[string]any, log *slog.Logger) (*Backend, error) {
	opts := DefaultOptions()
	if err := registry.DecodeOptions(section, &opts); err != nil {
		return nil, err
	}
	opts.Logger = log
	return Open(opts)
}

// resolve validates opts, fills in defaults and reads the token file.
func (opts Options) resolve() (Options, error) {
	def := DefaultOptions()
	var addrs []string
	for _, a := range opts.Address {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		addrs = def.Address
	}
	opts.Address = addrs
	switch {
	case opts.Wait == 0:
		opts.Wait = def.Wait
	case opts.Wait < time.Second || opts.Wait > maxWait:
		return opts, registry.Invalidf("wait", "%s is out of range (1s to %s)", opts.Wait, maxWait)
	}
	switch {
	case opts.AttemptTimeout == 0:
		opts.AttemptTimeout = def.AttemptTimeout
	case opts.AttemptTimeout < 10*time.Millisecond:
		return opts, registry.Invalidf("attempt-timeout", "%s is too short (at least 10ms)", opts.AttemptTimeout)
	}
	if (opts.ClientCert == "") != (opts.ClientKey == "") {
		return opts, registry.Invalidf("client-cert", "client-cert and client-key go together; set both or neither")
	}
	if opts.TokenFile != "" {
		b, err := os.ReadFile(opts.TokenFile)
		if err != nil {
			// The error names the file, never its content.
			return opts, registry.Invalidf("token-file", "cannot read the token: %v", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return opts, registry.Invalidf("token-file", "%s is empty", opts.TokenFile)
		}
		opts.Token = tok
	}
	if strings.ContainsAny(opts.Token, "\r\n") {
		return opts, registry.Invalidf("token", "the token contains a line break")
	}
	if strings.ContainsAny(opts.HTTPAuth, "\r\n") {
		return opts, registry.Invalidf("http-auth", "the value contains a line break")
	}
	if opts.Version == "" {
		opts.Version = buildinfo.Get().Version
	}
	return opts, nil
}

// String describes the options without the token, so that logging them is safe.
func (opts Options) String() string {
	return fmt.Sprintf("consul %s (token set: %t, http-auth set: %t)", strings.Join(opts.Address, ","), opts.Token != "", opts.HTTPAuth != "")
}

// GoString is String, so %#v does not print the token either.
func (opts Options) GoString() string { return opts.String() }
