// Package etcdopts holds the etcd backend's name and the schema of its config section. It
// depends on nothing but the registry types, so sdctl's host process can check config keys,
// read ETCDCTL_* variables and show the section in `sdctl config view` without linking the
// backend and its etcd client (it runs as its own executable, sdctl-backend-etcd).
package etcdopts

import (
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = "etcd"

// Defaults, as etcdctl has them.
const (
	DefaultEndpoint    = "127.0.0.1:2379"
	DefaultDialTimeout = 2 * time.Second
	DefaultPrefix      = "/services"
)

// Schema documents the keys of the "etcd" config section. Each works as
// SDCTL_ETCD_<KEY> and, where etcdctl has one, through etcdctl's environment variable.
func Schema() []registry.Option {
	return []registry.Option{
		{
			Key:     "endpoints",
			Default: DefaultEndpoint,
			Help: "Client URLs of the etcd members (host:port, http://host:port or https://host:port), " +
				"comma-separated in the environment. Requests fail over between them.",
			Env:  []string{"ETCDCTL_ENDPOINTS"},
			List: true,
		},
		{
			Key: "username",
			Help: "User for etcd authentication; USER:PASSWORD also sets the password, as with etcdctl --user. " +
				"Treated as a secret because it may hold the password.",
			Env:    []string{"ETCDCTL_USER"},
			Secret: true,
		},
		{
			Key:    "password",
			Help:   "Password of the user.",
			Env:    []string{"ETCDCTL_PASSWORD"},
			Secret: true,
		},
		{
			Key:  "ca-file",
			Help: "PEM file of the CA that signed the members' certificates (TLS).",
			Env:  []string{"ETCDCTL_CACERT"},
		},
		{
			Key:  "cert-file",
			Help: "PEM client certificate, for members that require one (with key-file).",
			Env:  []string{"ETCDCTL_CERT"},
		},
		{
			Key:  "key-file",
			Help: "PEM private key of the client certificate.",
			Env:  []string{"ETCDCTL_KEY"},
		},
		{
			Key:     "dial-timeout",
			Default: DefaultDialTimeout.String(),
			Help:    "How long to try to connect and log in before reporting the cluster unavailable.",
			Env:     []string{"ETCDCTL_DIAL_TIMEOUT"},
		},
		{
			Key:     "prefix",
			Default: DefaultPrefix,
			Help: "Key prefix of the registry: instances are keys <prefix>/<name>/<id>; gRPC clients " +
				"using etcd's resolver dial etcd:///<prefix>/<name>.",
		},
	}
}
