// Command sdctl-backend-etcd is sdctl's etcd backend. It ships beside the sdctl binary and
// sdctl starts it (or reattaches to it while it is warm); it is not meant to be run by hand.
package main
