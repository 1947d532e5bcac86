// Package spec holds the rules that turn one inspected Docker container into the instances to
// register for it: Registrator's SERVICE_* keys from env and labels, default names and IDs,
// addresses, tags, checks and health, and the ownership marks (Meta*) the watcher writes. It
// is pure: no Docker or registry calls.
package spec
