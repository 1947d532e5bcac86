package file

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sdctl/sdctl/registry"
)

// The format markers name the document format. Readers refuse markers they do not know, so a
// file written by a newer, incompatible sdctl fails loudly instead of being misread. Adding a
// field to records changes the marker, since readers reject unknown fields (to catch typos in
// hand-edited files).
//
// Version 2 added "declared_health", version 3 "initial_health" and "deregister_after". Readers
// take every version; encode writes the lowest one that holds the document, so a registry that
// does not use the newer fields stays readable by an sdctl that knows only the older versions.
const (
	formatV1 = "sdctl-file-registry/1"
	formatV2 = "sdctl-file-registry/2"
	formatV3 = "sdctl-file-registry/3"
)

// v3Keys start the fields that only version 3 has. A raw record holding neither string cannot
// hold the fields (it may hold the strings as meta keys, which only costs a decode).
var v3Keys = [...]string{`"initial_health":`, `"deregister_after":`}

// declaredKey starts the field that only version 2 has.
const declaredKey = `,"declared_health":`

// document is the decoded registry file.
type document struct {
	Revision uint64
	// Instances is sorted by ID, and IDs are unique.
	Instances []record
}

// record is one instance as the file stores it. Unlike registry.Instance it holds the health a
// person set by hand apart from the health the last registration declared; the reported health
// is computed from both, the TTL and Expires.
type record struct {
	ID      string
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	Weight  int
	// Drain is written as "weight": 0 (see registry.Instance.Drain).
	Drain   bool
	TTL     time.Duration
	Expires time.Time
	// Health is set by hand ("maintenance", "critical"); empty means passing. Register keeps
	// it: it is an operator's decision, not part of what a service registers.
	Health registry.Health
	// Declared is the health the last registration declared (registry.Instance.Health), empty
	// when it declared none. Register replaces it.
	Declared registry.Health
	// Initial is the TTL's health until the first heartbeat (warning or critical, from the
	// registration's ttl check); empty means passing. Heartbeat clears it.
	Initial registry.Health
	// DeregisterAfter, with a TTL, removes the instance once its TTL has run out this long:
	// the next write drops it and reads no longer list it.
	DeregisterAfter time.Duration

	// offset is where the record starts in the file it was read from, for error messages.
	offset int
	// raw, when set, is the record's line in a sealed document, which a rewrite copies as it
	// is; only ID and Name are decoded. Use document.decoded before reading other fields.
	raw string
}

// find returns the index of the record with the given ID, or where it would be inserted.
func (d *document) find(id string) (int, bool) {
	return slices.BinarySearchFunc(d.Instances, id, func(r record, id string) int { return strings.Compare(r.ID, id) })
}

// instance is the record as callers see it, with its health at time now.
func (r *record) instance(now time.Time) registry.Instance {
	inst := registry.Instance{
		ID:      r.ID,
		Name:    r.Name,
		Address: r.Address,
		Port:    r.Port,
		Tags:    slices.Clone(r.Tags), // the record may be shared (see docCache)
		Meta:    maps.Clone(r.Meta),
		Weight:  r.Weight,
		Drain:   r.Drain,
		TTL:     r.TTL,
		Health:  r.health(now),
	}
	if r.TTL > 0 {
		inst.Expires = r.Expires
	}
	return inst
}

// health combines the hand-set health, the declared health and the TTL, the worst winning: an
// instance not heartbeated in time is critical unless it is already worse (in maintenance).
func (r *record) health(now time.Time) registry.Health {
	h := r.Health.Worse(r.Declared)
	if r.TTL > 0 {
		if !now.Before(r.Expires) {
			h = h.Worse(registry.HealthCritical)
		} else {
			h = h.Worse(r.Initial)
		}
	}
	return h
}

// expired reports whether the record is gone at time now: its TTL ran out at least
// DeregisterAfter ago. Such records are never listed and the next write drops them.
func (r *record) expired(now time.Time) bool {
	return r.TTL > 0 && r.DeregisterAfter > 0 && !now.Before(r.Expires.Add(r.DeregisterAfter))
}

// v3 reports whether the record needs format version 3. A raw record must have been checked
// with mayBeV3 and decoded when it may be.
func (r *record) v3() bool { return r.Initial != "" || r.DeregisterAfter != 0 }

// mayBeV3 reports whether a raw record may hold version 3 fields.
func (r *record) mayBeV3() bool {
	if r.raw == "" {
		return r.v3()
	}
	return slices.ContainsFunc(v3Keys[:], func(k string) bool { return strings.Contains(r.raw, k) })
}

// validate checks a record read from the file with the rules Register applies.
func (r *record) validate() error {
	for _, f := range [...]struct {
		field string
		h     registry.Health
	}{{"health", r.Health}, {"declared_health", r.Declared}, {"initial_health", r.Initial}} {
		if registry.ValidateHealth(f.h) != nil {
			return registry.Invalidf(f.field, "%q is not passing, warning, critical or maintenance", abbreviate(string(f.h)))
		}
	}
	switch {
	case r.Initial != "" && r.Initial != registry.HealthWarning && r.Initial != registry.HealthCritical:
		return registry.Invalidf("initial_health", "%q is not warning or critical", r.Initial)
	case r.DeregisterAfter < 0:
		return registry.Invalidf("deregister_after", "%s is negative", r.DeregisterAfter)
	case (r.Initial != "" || r.DeregisterAfter != 0) && r.TTL <= 0:
		return registry.Invalidf("ttl", "initial_health and deregister_after need a ttl")
	}
	return r.instance(time.Time{}).Validate()
}

// declares reports whether the record has a declared health, without decoding a raw record:
// encode writes the field last, and its value is one of four fixed words.
func (r *record) declares() bool {
	if r.raw == "" {
		return r.Declared != ""
	}
	rest, ok := strings.CutSuffix(r.raw, `"}`)
	if !ok {
		return false
	}
	for _, h := range [...]registry.Health{registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance} {
		if strings.HasSuffix(rest, declaredKey+`"`+string(h)) {
			return true
		}
	}
	return false
}

// encode renders doc as the file's bytes: one instance per line, so that grep finds an
// instance and diff shows one line per change, and sealed (see seal.go). Records must be
// sorted by ID.
func encode(doc *document) []byte {
	b := make([]byte, 0, 160+len(doc.Instances)*192)
	header := headerV1
	switch {
	case slices.ContainsFunc(doc.Instances, func(r record) bool { return r.raw == "" && r.v3() }):
		header = headerV3
	case slices.ContainsFunc(doc.Instances, func(r record) bool { return r.declares() }):
		header = headerV2
	}
	b = append(b, header...)
	b = strconv.AppendUint(b, doc.Revision, 10)
	b = append(b, checksumPrefix...)
	sumAt := len(b)
	b = append(b, "00000000\",\n"...)
	body := len(b)
	b = append(b, instancesOpen...)
	for i := range doc.Instances {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, recordIndent...)
		if r := &doc.Instances[i]; r.raw != "" {
			b = append(b, r.raw...)
		} else {
			b = appendRecord(b, r)
		}
	}
	if len(doc.Instances) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, documentClose...)
	putChecksum(b[sumAt:sumAt+8], checksum(b[body:]))
	return b
}

func appendRecord(b []byte, r *record) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, r.Name)
	b = append(b, `,"address":`...)
	b = appendString(b, r.Address)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(r.Port), 10)
	if len(r.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range r.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	if len(r.Meta) > 0 {
		b = append(b, `,"meta":{`...)
		for i, k := range slices.Sorted(maps.Keys(r.Meta)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Meta[k])
		}
		b = append(b, '}')
	}
	if r.Weight != 0 || r.Drain {
		b = append(b, `,"weight":`...)
		b = strconv.AppendInt(b, int64(r.Weight), 10)
	}
	if r.TTL != 0 {
		b = append(b, `,"ttl":"`...)
		b = append(b, r.TTL.String()...)
		b = append(b, '"')
		if !r.Expires.IsZero() {
			b = append(b, `,"expires":"`...)
			b = r.Expires.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		if r.Initial != "" {
			b = append(b, `,"initial_health":`...)
			b = appendString(b, string(r.Initial))
		}
		if r.DeregisterAfter != 0 {
			b = append(b, `,"deregister_after":"`...)
			b = append(b, r.DeregisterAfter.String()...)
			b = append(b, '"')
		}
	}
	if r.Health != "" {
		b = append(b, `,"health":`...)
		b = appendString(b, string(r.Health))
	}
	if r.Declared != "" {
		// Last, so that record.declares finds it in a raw record.
		b = append(b, declaredKey...)
		b = appendString(b, string(r.Declared))
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Unlike encoding/json it leaves <, > and & alone,
// which keeps URLs in metadata readable; like it, it escapes U+2028 and U+2029 and replaces
// invalid UTF-8 with U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
