// Package registrytest is the conformance suite every sdctl backend passes: Run exercises a
// registry.Registry through its interface only, so the same suite checks a backend in process
// and through the plugin boundary. Options says which optional features the backend has; the
// suite checks that the others fail with registry.ErrUnsupported.
package registrytest
