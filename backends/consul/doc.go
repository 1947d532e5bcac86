// Package consul is sdctl's HashiCorp Consul backend. It registers instances through a Consul
// agent's HTTP API (so the agent runs their health checks and keeps the catalog in sync),
// resolves them from the health endpoint, follows changes with blocking queries, and reports
// the server cluster's raft, gossip and autopilot state.
//
// It speaks Consul's HTTP API with its own small client rather than hashicorp/consul/api,
// because it talks to a list of addresses: a request that fails on one is retried on the next,
// and the backend stays on whichever answered, so discovery keeps working while a server (or
// the leader) is down.
package consul
