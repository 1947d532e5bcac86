package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Durations appear in JSON as Go duration strings ("10s"), as people write them in flags and
// config files, rather than as nanoseconds. Decoding accepts both forms.

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s is not a duration", b)
	}
	*d = jsonDuration(n)
	return nil
}

// instanceWire is Instance with readable durations, fields in the same order. A drained instance
// is written with "weight": 0; an instance of the default weight has no weight key.
type instanceWire struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Weight  *int              `json:"weight,omitempty"`
	TTL     jsonDuration      `json:"ttl,omitzero"`
	Checks  []Check           `json:"checks,omitempty"`
	Health  Health            `json:"health,omitempty"`
	Node    string            `json:"node,omitempty"`
	Expires time.Time         `json:"expires,omitzero"`
}

// wireWeight is the weight key of an instance: 0 when drained, absent when the default.
func wireWeight(inst Instance) *int {
	switch {
	case inst.Drain:
		return new(int)
	case inst.Weight != 0:
		w := inst.Weight
		return &w
	}
	return nil
}

// setWeight reads the weight key: 0 drains the instance.
func (inst *Instance) setWeight(w *int) {
	if w == nil {
		return
	}
	inst.Weight = *w
	inst.Drain = *w == 0
}

// MarshalJSON writes the TTL as a duration string, and a drained instance as weight 0.
func (inst Instance) MarshalJSON() ([]byte, error) {
	return json.Marshal(instanceWire{ID: inst.ID, Name: inst.Name, Address: inst.Address, Port: inst.Port,
		Tags: inst.Tags, Meta: inst.Meta, Weight: wireWeight(inst), TTL: jsonDuration(inst.TTL), Checks: inst.Checks,
		Health: inst.Health, Node: inst.Node, Expires: inst.Expires})
}

// UnmarshalJSON reads a TTL written as a duration string or as nanoseconds; weight 0 drains.
func (inst *Instance) UnmarshalJSON(b []byte) error {
	var w instanceWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*inst = Instance{ID: w.ID, Name: w.Name, Address: w.Address, Port: w.Port, Tags: w.Tags, Meta: w.Meta,
		TTL: time.Duration(w.TTL), Checks: w.Checks, Health: w.Health, Node: w.Node, Expires: w.Expires}
	inst.setWeight(w.Weight)
	return nil
}

// checkWire is Check with readable durations, fields in the same order.
type checkWire struct {
	Kind            CheckKind           `json:"kind"`
	Target          string              `json:"target"`
	Interval        jsonDuration        `json:"interval,omitzero"`
	Timeout         jsonDuration        `json:"timeout,omitzero"`
	DeregisterAfter jsonDuration        `json:"deregister_after,omitzero"`
	Method          string              `json:"method,omitempty"`
	Header          map[string][]string `json:"header,omitempty"`
	TLSSkipVerify   bool                `json:"tls_skip_verify,omitempty"`
	InitialStatus   Health              `json:"initial_status,omitempty"`
	GRPCUseTLS      bool                `json:"grpc_use_tls,omitempty"`
}

// MarshalJSON writes the check's durations as duration strings.
func (c Check) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkWire{c.Kind, c.Target, jsonDuration(c.Interval), jsonDuration(c.Timeout),
		jsonDuration(c.DeregisterAfter), c.Method, c.Header, c.TLSSkipVerify, c.InitialStatus, c.GRPCUseTLS})
}

// UnmarshalJSON reads durations written as strings or as nanoseconds.
func (c *Check) UnmarshalJSON(b []byte) error {
	var w checkWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Check{w.Kind, w.Target, time.Duration(w.Interval), time.Duration(w.Timeout), time.Duration(w.DeregisterAfter),
		w.Method, w.Header, w.TLSSkipVerify, w.InitialStatus, w.GRPCUseTLS}
	return nil
}

// instanceInput is instanceWire as DecodeInstance reads it: durations only as strings with a unit,
// checks decoded field by field so unknown keys are refused at every level.
type instanceInput struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
	Weight  *int              `json:"weight"`
	TTL     textDuration      `json:"ttl"`
	Checks  []checkInput      `json:"checks"`
	Health  Health            `json:"health"`
	Node    string            `json:"node"`
	Expires time.Time         `json:"expires"`
}

type checkInput struct {
	Kind            CheckKind           `json:"kind"`
	Target          string              `json:"target"`
	Interval        textDuration        `json:"interval"`
	Timeout         textDuration        `json:"timeout"`
	DeregisterAfter textDuration        `json:"deregister_after"`
	Method          string              `json:"method"`
	Header          map[string][]string `json:"header"`
	TLSSkipVerify   bool                `json:"tls_skip_verify"`
	InitialStatus   Health              `json:"initial_status"`
	GRPCUseTLS      bool                `json:"grpc_use_tls"`
}

// textDuration is a duration written by a person: a string with a unit ("10s"). A bare number
// is refused: 10 could mean seconds or nanoseconds.
type textDuration time.Duration

func (d *textDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a duration (write it with a unit: \"10s\")", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like \"500ms\", \"10s\", \"2m\")", s)
	}
	*d = textDuration(v)
	return nil
}

// InstanceKeys lists the keys of an instance in JSON, in the order MarshalJSON writes them.
func InstanceKeys() []string {
	return []string{"id", "name", "address", "port", "tags", "meta", "weight", "ttl", "checks", "health", "node", "expires"}
}

// CheckKeys lists the keys of a check in JSON, in the order MarshalJSON writes them.
func CheckKeys() []string {
	return []string{"kind", "target", "interval", "timeout", "deregister_after", "method", "header", "tls_skip_verify", "initial_status", "grpc_use_tls"}
}

// DecodeInstance reads one instance written as Instance.MarshalJSON writes it, strictly: an
// unknown key, at any level, a duration without a unit, or trailing data is an error, where
// UnmarshalJSON would accept them. The fields reported by a registry (node, expires) are read,
// so printed instances read back.
func DecodeInstance(data []byte) (Instance, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w instanceInput
	if err := dec.Decode(&w); err != nil {
		return Instance{}, err
	}
	if dec.More() {
		return Instance{}, fmt.Errorf("unexpected data after the instance")
	}
	inst := Instance{ID: w.ID, Name: w.Name, Address: w.Address, Port: w.Port, Tags: w.Tags, Meta: w.Meta,
		TTL: time.Duration(w.TTL), Health: w.Health, Node: w.Node, Expires: w.Expires}
	inst.setWeight(w.Weight)
	for _, c := range w.Checks {
		inst.Checks = append(inst.Checks, Check{c.Kind, c.Target, time.Duration(c.Interval), time.Duration(c.Timeout),
			time.Duration(c.DeregisterAfter), c.Method, c.Header, c.TLSSkipVerify, c.InitialStatus, c.GRPCUseTLS})
	}
	return inst, nil
}
