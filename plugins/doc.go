// Package plugins carries sdctl's registry backends across a process boundary with
// hashicorp/go-plugin over gRPC.
//
// A backend author calls Serve with a Backend; sdctl (the host) uses Host to find, start and
// configure a backend and gets back a registry.Registry. Between the two sit the protocol in
// proto/, a translation layer (convert.go) and an error mapping (errors.go) that keeps
// registry's sentinel errors meaningful on both sides.
package plugins
