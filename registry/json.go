package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
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

// instanceJSON is Instance as JSON carries it, fields in the same order, durations as duration
// strings. D reads durations: jsonDuration (also nanoseconds) for UnmarshalJSON, textDuration
// (a unit required) for DecodeInstance; C is the check type, decoded field by field there too so
// that unknown keys are refused at every level. A drained instance has "weight": 0; one of the
// default weight has no weight key.
type instanceJSON[D ~int64, C any] struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Weight  *int              `json:"weight,omitempty"`
	TTL     D                 `json:"ttl,omitzero"`
	Checks  []C               `json:"checks,omitempty"`
	Health  Health            `json:"health,omitempty"`
	Node    string            `json:"node,omitempty"`
	Expires time.Time         `json:"expires,omitzero"`
}

// checkJSON is Check as JSON carries it; D as in instanceJSON.
type checkJSON[D ~int64] struct {
	Kind            CheckKind           `json:"kind"`
	Target          string              `json:"target"`
	Interval        D                   `json:"interval,omitzero"`
	Timeout         D                   `json:"timeout,omitzero"`
	DeregisterAfter D                   `json:"deregister_after,omitzero"`
	Method          string              `json:"method,omitempty"`
	Header          map[string][]string `json:"header,omitempty"`
	TLSSkipVerify   bool                `json:"tls_skip_verify,omitempty"`
	InitialStatus   Health              `json:"initial_status,omitempty"`
	GRPCUseTLS      bool                `json:"grpc_use_tls,omitempty"`
}

func (w instanceJSON[D, C]) instance(check func(C) Check) Instance {
	inst := Instance{ID: w.ID, Name: w.Name, Address: w.Address, Port: w.Port, Tags: w.Tags, Meta: w.Meta,
		TTL: time.Duration(w.TTL), Health: w.Health, Node: w.Node, Expires: w.Expires}
	if w.Weight != nil { // weight 0 drains
		inst.Weight, inst.Drain = *w.Weight, *w.Weight == 0
	}
	for _, c := range w.Checks {
		inst.Checks = append(inst.Checks, check(c))
	}
	return inst
}

func (c checkJSON[D]) check() Check {
	return Check{c.Kind, c.Target, time.Duration(c.Interval), time.Duration(c.Timeout), time.Duration(c.DeregisterAfter),
		c.Method, c.Header, c.TLSSkipVerify, c.InitialStatus, c.GRPCUseTLS}
}

// MarshalJSON writes the TTL as a duration string, and a drained instance as weight 0.
func (inst Instance) MarshalJSON() ([]byte, error) {
	var weight *int
	switch {
	case inst.Drain:
		weight = new(int)
	case inst.Weight != 0:
		weight = &inst.Weight
	}
	return json.Marshal(instanceJSON[jsonDuration, Check]{ID: inst.ID, Name: inst.Name, Address: inst.Address, Port: inst.Port,
		Tags: inst.Tags, Meta: inst.Meta, Weight: weight, TTL: jsonDuration(inst.TTL), Checks: inst.Checks,
		Health: inst.Health, Node: inst.Node, Expires: inst.Expires})
}

// UnmarshalJSON reads a TTL written as a duration string or as nanoseconds; weight 0 drains.
func (inst *Instance) UnmarshalJSON(b []byte) error {
	var w instanceJSON[jsonDuration, Check]
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*inst = w.instance(func(c Check) Check { return c })
	return nil
}

// MarshalJSON writes the check's durations as duration strings.
func (c Check) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkJSON[jsonDuration]{c.Kind, c.Target, jsonDuration(c.Interval), jsonDuration(c.Timeout),
		jsonDuration(c.DeregisterAfter), c.Method, c.Header, c.TLSSkipVerify, c.InitialStatus, c.GRPCUseTLS})
}

// UnmarshalJSON reads durations written as strings or as nanoseconds.
func (c *Check) UnmarshalJSON(b []byte) error {
	var w checkJSON[jsonDuration]
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = w.check()
	return nil
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
func InstanceKeys() []string { return jsonKeys(reflect.TypeFor[instanceJSON[jsonDuration, Check]]()) }

// CheckKeys lists the keys of a check in JSON, in the order MarshalJSON writes them.
func CheckKeys() []string { return jsonKeys(reflect.TypeFor[checkJSON[jsonDuration]]()) }

func jsonKeys(t reflect.Type) []string {
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return keys
}

// DecodeInstance reads one instance written as Instance.MarshalJSON writes it, strictly: an
// unknown key, at any level, a duration without a unit, or trailing data is an error, where
// UnmarshalJSON would accept them. The fields reported by a registry (node, expires) are read,
// so printed instances read back.
func DecodeInstance(data []byte) (Instance, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w instanceJSON[textDuration, checkJSON[textDuration]]
	if err := dec.Decode(&w); err != nil {
		return Instance{}, err
	}
	if dec.More() {
		return Instance{}, fmt.Errorf("unexpected data after the instance")
	}
	return w.instance(checkJSON[textDuration].check), nil
}
