// Package etcd is sdctl's etcd backend: one key per instance, <prefix>/<name>/<id>, holding
// etcd's naming/endpoints JSON record with sdctl's fields in its Metadata, so gRPC clients
// using etcd's resolver (etcd:///<prefix>/<name>) discover what sdctl registers. Instances
// with a TTL are attached to a lease that heartbeats renew; watches follow etcd revisions.
package etcd
