package wire

import (
	"context"
	"log/slog"

	"github.com/sdctl/sdctl/registry"
)

// ProtocolVersion is the newest plugin protocol this build speaks. Hosts offer every version
// they know and go-plugin picks the highest one both sides know.
const ProtocolVersion = 1

// ProtocolMinor is the newest minor version of protocol 1 this build speaks: 1 adds
// RegisterBatch. Host and backend exchange theirs in Info and use the lower one, so a backend
// built before 1.1 is called one instance at a time.
const ProtocolMinor = 1

// Backend describes a registry backend to serve: its identity, its configuration keys and a
// constructor that builds the registry from its config section.
type Backend struct {
	Name         string
	Version      string
	Capabilities []registry.Capability
	// Options documents the keys of the backend's config section. The host reads the environment
	// and config file for exactly these keys, so every documented key works from SDCTL_* variables.
	Options []registry.Option
	// New builds the registry from the backend's config section. Decode it with
	// registry.DecodeOptions and report bad values as *registry.FieldError.
	New func(ctx context.Context, section map[string]any, log *slog.Logger) (registry.Registry, error)
}

// Info is what the backend reports before it is configured.
func (b Backend) Info() registry.Info {
	return registry.Info{Name: b.Name, Version: b.Version, Capabilities: b.Capabilities, Options: b.Options}
}
