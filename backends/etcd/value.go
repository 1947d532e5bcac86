package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// valueFormat marks the values sdctl writes, inside Metadata. Values without it (written by
// another tool, or garbage) are skipped, never misread.
const valueFormat = "sdctl/1"

// endpointValue is etcd's naming/endpoints record (client/v3/naming/endpoints/internal.Update,
// itself wire-compatible with grpc-go's old naming.Update): a gRPC client resolving through
// etcd reads Addr; sdctl keeps the instance in Metadata.
type endpointValue struct {
	// Op is 0 (add) for a live endpoint; etcd's resolver never stores 1 (delete).
	Op   int    `json:"Op"`
	Addr string `json:"Addr"`
	// Metadata is a JSON object; other tools may store anything there, sdctl its fields.
	Metadata json.RawMessage `json:"Metadata"`
}

// metadata is the instance as sdctl stores it.
type metadata struct {
	Format  string            `json:"format"`
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Weight  int               `json:"weight,omitempty"`
	// Drain takes the instance out of rotation (registry.Instance.Drain, weight 0 for users).
	Drain bool `json:"drain,omitempty"`
	// TTL is a Go duration string; the lease holds the same TTL rounded up to whole seconds.
	TTL string `json:"ttl,omitempty"`
	// Health is set by an operator (maintenance, critical) to take an instance out of
	// rotation; empty means passing while the key lives. Register keeps it.
	Health registry.Health `json:"health,omitempty"`
	// Declared is the health the last registration declared (registry.Instance.Health); empty
	// when it declared none. Register replaces it. Versions of sdctl that predate it ignore it
	// (unknown fields are ignored), so values that carry it stay readable everywhere.
	Declared registry.Health `json:"declared_health,omitempty"`
}

// encodeValue renders inst as the value of its key, with inst.Health as the declared health.
// health is an operator's status to keep (from an earlier value of the key); empty for none.
func encodeValue(inst registry.Instance, health registry.Health) ([]byte, error) {
	md := metadata{
		Format:   valueFormat,
		ID:       inst.ID,
		Name:     inst.Name,
		Address:  inst.Address,
		Port:     inst.Port,
		Tags:     inst.Tags,
		Meta:     inst.Meta,
		Weight:   inst.Weight,
		Drain:    inst.Drain,
		Health:   health,
		Declared: inst.Health,
	}
	if inst.TTL > 0 {
		md.TTL = inst.TTL.String()
	}
	raw, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	return json.Marshal(endpointValue{Op: 0, Addr: registry.HostPort(inst.Address, inst.Port), Metadata: raw})
}

// errForeign marks a value that is not sdctl's: not JSON, not a naming/endpoints record, or
// one without sdctl's metadata.
var errForeign = errors.New("not written by sdctl")

// decodeValue parses the value of the key <prefix>/<name>/<id> into an instance, checking
// that it is a live naming/endpoints record written by sdctl for that name and ID and that
// every field is valid. The instance's health is the worse of the operator's and the declared.
func decodeValue(name, id string, value []byte) (registry.Instance, error) {
	inst, _, err := decodeMetadata(name, id, value)
	return inst, err
}

// decodeMetadata is decodeValue that also returns the metadata as stored.
func decodeMetadata(name, id string, value []byte) (registry.Instance, metadata, error) {
	var md metadata
	var ev endpointValue
	if err := json.Unmarshal(value, &ev); err != nil {
		return registry.Instance{}, md, fmt.Errorf("%w: not a naming/endpoints JSON record (%v)", errForeign, err)
	}
	if ev.Op != 0 {
		return registry.Instance{}, md, fmt.Errorf("%w: naming/endpoints operation %d is not an addition", errForeign, ev.Op)
	}
	raw := bytes.TrimSpace(ev.Metadata)
	if len(raw) == 0 || raw[0] != '{' {
		return registry.Instance{}, md, fmt.Errorf("%w: Metadata is not an sdctl object", errForeign)
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		return registry.Instance{}, md, fmt.Errorf("%w: Metadata: %v", errForeign, err)
	}
	if md.Format != valueFormat {
		return registry.Instance{}, md, fmt.Errorf("%w: Metadata.format is %q, not %q", errForeign, md.Format, valueFormat)
	}
	inst, err := md.instance(name, id)
	if err == nil {
		if want := registry.HostPort(inst.Address, inst.Port); ev.Addr != want {
			err = fmt.Errorf("Addr %q does not match the address and port in Metadata (%s)", ev.Addr, want) //nolint:staticcheck // starts with the field name as the value spells it
		}
	}
	return inst, md, err
}

// instance checks the metadata of key <prefix>/<name>/<id> and turns it into an instance.
func (md *metadata) instance(name, id string) (registry.Instance, error) {
	inst := registry.Instance{
		ID:      md.ID,
		Name:    md.Name,
		Address: md.Address,
		Port:    md.Port,
		Tags:    md.Tags,
		Meta:    md.Meta,
		Weight:  md.Weight,
		Drain:   md.Drain,
		Health:  registry.HealthPassing,
	}
	if md.ID != id || md.Name != name {
		return inst, fmt.Errorf("Metadata names instance %q of %q, but the key says %q of %q", md.ID, md.Name, id, name) //nolint:staticcheck // starts with the field name as the value spells it
	}
	if md.TTL != "" {
		ttl, err := time.ParseDuration(md.TTL)
		if err != nil || ttl <= 0 {
			return inst, fmt.Errorf("Metadata.ttl %q is not a positive duration", md.TTL) //nolint:staticcheck // starts with the field name as the value spells it
		}
		inst.TTL = ttl
	}
	if registry.ValidateHealth(md.Health) != nil {
		return inst, fmt.Errorf("Metadata.health %q is not passing, warning, critical or maintenance", md.Health) //nolint:staticcheck // starts with the field name as the value spells it
	}
	if registry.ValidateHealth(md.Declared) != nil {
		return inst, fmt.Errorf("Metadata.declared_health %q is not passing, warning, critical or maintenance", md.Declared) //nolint:staticcheck // starts with the field name as the value spells it
	}
	inst.Health = md.Health.Worse(md.Declared)
	return inst, inst.Validate()
}

// keys maps between instances and their etcd keys under one prefix.
type keys struct{ prefix string }

// root is the prefix of every instance key: "<prefix>/".
func (k keys) root() string { return k.prefix + "/" }

// service is the prefix of one service's keys: "<prefix>/<name>/", the key space etcd's
// resolver watches for the target <prefix>/<name>.
func (k keys) service(name string) string { return k.prefix + "/" + name + "/" }

// instance is the key of one instance.
func (k keys) instance(name, id string) string { return k.prefix + "/" + name + "/" + id }

// parse splits an instance key into service name and instance ID; ok is false for keys under
// the prefix that do not have that shape.
func (k keys) parse(key string) (name, id string, ok bool) {
	rest, found := strings.CutPrefix(key, k.root())
	if !found {
		return "", "", false
	}
	name, id, found = strings.Cut(rest, "/")
	if !found || strings.Contains(id, "/") || registry.ValidateName(name) != nil || registry.ValidateID(id) != nil {
		return "", "", false
	}
	return name, id, true
}
