package registry

import (
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

type instanceJSON Instance

type instanceWire struct {
	*instanceJSON
	TTL jsonDuration `json:"ttl,omitzero"`
}

// MarshalJSON writes the TTL as a duration string.
func (inst Instance) MarshalJSON() ([]byte, error) {
	return json.Marshal(instanceWire{instanceJSON: (*instanceJSON)(&inst), TTL: jsonDuration(inst.TTL)})
}

// UnmarshalJSON reads a TTL written as a duration string or as nanoseconds.
func (inst *Instance) UnmarshalJSON(b []byte) error {
	w := instanceWire{instanceJSON: (*instanceJSON)(inst)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	inst.TTL = time.Duration(w.TTL)
	return nil
}

type checkJSON Check

type checkWire struct {
	*checkJSON
	Interval        jsonDuration `json:"interval,omitzero"`
	Timeout         jsonDuration `json:"timeout,omitzero"`
	DeregisterAfter jsonDuration `json:"deregister_after,omitzero"`
}

// MarshalJSON writes the check's durations as duration strings.
func (c Check) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkWire{checkJSON: (*checkJSON)(&c), Interval: jsonDuration(c.Interval),
		Timeout: jsonDuration(c.Timeout), DeregisterAfter: jsonDuration(c.DeregisterAfter)})
}

// UnmarshalJSON reads durations written as strings or as nanoseconds.
func (c *Check) UnmarshalJSON(b []byte) error {
	w := checkWire{checkJSON: (*checkJSON)(c)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	c.Interval, c.Timeout, c.DeregisterAfter = time.Duration(w.Interval), time.Duration(w.Timeout), time.Duration(w.DeregisterAfter)
	return nil
}
