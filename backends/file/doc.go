// Package file is sdctl's embedded default backend: a registry kept in one human-readable JSON
// document on the local disk, so registration and discovery work on a fresh machine without a
// server. Writes are atomic and serialised with a file lock, so concurrent sdctl processes
// share the file safely, and a person can read, grep and edit it.
package file
