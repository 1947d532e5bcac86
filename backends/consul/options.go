package consul

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sdctl/sdctl/backends/consul/consulopts"
	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = consulopts.Name

const (
	defaultAddress        = consulopts.DefaultAddress
	defaultWait           = consulopts.DefaultWait
	defaultAttemptTimeout = consulopts.DefaultAttemptTimeout
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

	// Version is what Info reports when the backend is used in process; through the plugin
	// protocol the plugin entry's version is reported. It is set by the program that embeds
	// the backend, not by configuration.
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
// variables that set them (see package consulopts, which the host reads without linking this
// package).
func OptionSchema() []registry.Option { return consulopts.Schema() }

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
	return opts, nil
}

// String describes the options without the token, so that logging them is safe.
func (opts Options) String() string {
	return fmt.Sprintf("consul %s (token set: %t, http-auth set: %t)", strings.Join(opts.Address, ","), opts.Token != "", opts.HTTPAuth != "")
}

// GoString is String, so %#v does not print the token either.
func (opts Options) GoString() string { return opts.String() }
