// Package consul is sdctl's HashiCorp Consul backend. It registers instances through a Consul
// agent's HTTP API (so the agent runs their health checks and keeps the catalog in sync),
// resolves them from the health endpoint, follows changes with blocking queries, and reports
// the server cluster's raft, gossip and autopilot state.
//
// It talks to Consul through github.com/hashicorp/consul/api, with one api.Client per
// configured address: a request that fails on one address is retried on the next, and the
// backend stays on whichever answered, so discovery keeps working while a server (or the
// leader) is down. Under every client a guard (guard.go) caps answers and checks that they
// come from Consul, so a web server or a proxy's 404 is "unavailable", never "not found".
package consul
