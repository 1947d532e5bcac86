// Package bundled groups the plugin entries of the backends that ship beside sdctl as their own
// executables: consulplugin (cmd/sdctl-backend-consul) and etcdplugin (cmd/sdctl-backend-etcd).
// One package per backend, so each executable links only its own backend's client. sdctl itself
// must import neither: it knows their option schemas from backends/*/…opts.
package bundled
