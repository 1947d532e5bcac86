// Package consulopts holds the consul backend's name and the schema of its config section. It
// depends on nothing but the registry types, so sdctl's host process can check config keys,
// read CONSUL_* variables and show the section in `sdctl config view` without linking the
// backend (which runs as its own executable, sdctl-backend-consul).
package consulopts

import (
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = "consul"

// Defaults of the keys that have one.
const (
	DefaultAddress        = "127.0.0.1:8500"
	DefaultWait           = time.Minute
	DefaultAttemptTimeout = 2 * time.Second
)

// Schema documents the keys of the "consul" config section and the Consul environment
// variables that set them.
func Schema() []registry.Option {
	return []registry.Option{
		{Key: "address", Default: DefaultAddress, List: true, Env: []string{"CONSUL_HTTP_ADDR"},
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
		{Key: "wait", Default: DefaultWait.String(),
			Help: "Longest hold of one blocking query in watches (at most 10m); a change ends it at once."},
		{Key: "attempt-timeout", Default: DefaultAttemptTimeout.String(),
			Help: "Time limit for one request to one address before the next address is tried; the last address " +
				"gets what remains of the command's --timeout."},
	}
}
