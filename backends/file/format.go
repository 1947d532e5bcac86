package file

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sdctl/sdctl/registry"
)

// formatMarker names the document format. Readers refuse markers they do not know, so a file
// written by a newer, incompatible sdctl fails loudly instead of being misread. Adding a field
// to records changes the marker, since readers reject unknown fields (to catch typos in
// hand-edited files).
const formatMarker = "sdctl-file-registry/1"

// document is the decoded registry file.
type document struct {
	Revision uint64
	// Instances is sorted by ID, and IDs are unique.
	Instances []record
}

// record is one instance as stored. Expires and Health are kept separately from the
// registry.Instance fields because the document stores them and health is computed from them.
type record struct {
	ID      string
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	Weight  int
	TTL     time.Duration
	Expires time.Time
	// Health is set by hand ("maintenance", "critical"); empty means passing.
	Health registry.Health

	// offset is where the record starts in the file it was read from, for error messages.
	offset int
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
		Tags:    r.Tags,
		Meta:    r.Meta,
		Weight:  r.Weight,
		TTL:     r.TTL,
		Health:  r.health(now),
	}
	if r.TTL > 0 {
		inst.Expires = r.Expires
	}
	return inst
}

// health combines the hand-set health with the TTL: an instance not heartbeated in time is
// critical unless it is already worse (in maintenance).
func (r *record) health(now time.Time) registry.Health {
	h := r.Health
	if h == "" {
		h = registry.HealthPassing
	}
	if r.TTL > 0 && !now.Before(r.Expires) && (h == registry.HealthPassing || h == registry.HealthWarning) {
		h = registry.HealthCritical
	}
	return h
}

// validate checks a record read from the file with the rules Register applies.
func (r *record) validate() error {
	if err := r.instance(time.Time{}).Validate(); err != nil {
		return err
	}
	switch r.Health {
	case "", registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance:
		return nil
	}
	return registry.Invalidf("health", "%q is not passing, warning, critical or maintenance", r.Health)
}

// encode renders doc as the file's bytes: one instance per line, so that grep finds an
// instance and diff shows one line per change. Records must be sorted by ID.
func encode(doc *document) []byte {
	b := make([]byte, 0, 128+len(doc.Instances)*192)
	b = append(b, "{\n  \"format\": \""+formatMarker+"\",\n  \"revision\": "...)
	b = strconv.AppendUint(b, doc.Revision, 10)
	b = append(b, ",\n  \"instances\": ["...)
	for i := range doc.Instances {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = appendRecord(b, &doc.Instances[i])
	}
	if len(doc.Instances) > 0 {
		b = append(b, "\n  "...)
	}
	return append(b, "]\n}\n"...)
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
		for i, k := range slices.Sorted(mapsKeys(r.Meta)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Meta[k])
		}
		b = append(b, '}')
	}
	if r.Weight != 0 {
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
	}
	if r.Health != "" {
		b = append(b, `,"health":`...)
		b = appendString(b, string(r.Health))
	}
	return append(b, '}')
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
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

// decode parses and validates a registry document. It is written by hand rather than with
// encoding/json because `sdctl resolve` reads the whole file on every run: this parser takes
// strings straight out of the document without copying them and reports problems with a line
// and column. An empty file is an empty registry. Problems are *CorruptError without a path.
func decode(data []byte) (document, error) {
	p := parser{s: string(data)}
	var doc document
	p.ws()
	if p.pos == len(p.s) {
		return doc, nil
	}
	var seen [3]bool
	formatOK := false
	empty, err := p.open('{', "the document")
	for ; err == nil && !empty; empty, err = p.more('}', "the document") {
		key, keyOff, err := p.key()
		if err != nil {
			return doc, err
		}
		i := slices.Index([]string{"format", "revision", "instances"}, key)
		if i < 0 {
			return doc, p.errorAt(keyOff, "unknown field %q in the document (format, revision, instances)", key)
		}
		if seen[i] {
			return doc, p.errorAt(keyOff, "field %q appears twice", key)
		}
		seen[i] = true
		switch key {
		case "format":
			off := p.pos
			f, err := p.str("format")
			if err != nil {
				return doc, err
			}
			if f != formatMarker {
				return doc, p.errorAt(off, "format %q is not %q: the file was written by another program or a newer sdctl", abbreviate(f), formatMarker)
			}
			formatOK = true
		case "revision":
			n, err := p.int("revision")
			if err != nil {
				return doc, err
			}
			if n < 0 {
				return doc, p.errorf("revision %d is negative", n)
			}
			doc.Revision = uint64(n)
		case "instances":
			if doc.Instances, err = p.instances(); err != nil {
				return doc, err
			}
		}
	}
	if err != nil {
		return doc, err
	}
	if p.ws(); p.pos != len(p.s) {
		return doc, p.errorf("unexpected %s after the end of the document", p.found())
	}
	if !formatOK {
		return doc, p.errorAt(0, "no \"format\": %q field; this is not an sdctl file registry", formatMarker)
	}
	return doc, p.sortAndCheckIDs(doc.Instances)
}

func (p *parser) instances() ([]record, error) {
	if p.null() {
		return nil, nil
	}
	// Most documents are written by sdctl with one record per line; counting lines sizes the
	// slice once instead of growing it.
	recs := make([]record, 0, strings.Count(p.s[p.pos:], "\n"))
	empty, err := p.open('[', "instances")
	for ; err == nil && !empty; empty, err = p.more(']', "instances") {
		recs = append(recs, record{offset: p.pos})
		r := &recs[len(recs)-1]
		if err := p.record(r); err != nil {
			return nil, err
		}
		if err := r.validate(); err != nil {
			return nil, p.errorAt(r.offset, "instance %d (id %q): %v", len(recs), abbreviate(r.ID), err)
		}
	}
	return recs, err
}

// sortAndCheckIDs sorts records that a person put out of order and rejects duplicate IDs,
// which would make Register and Deregister ambiguous.
func (p *parser) sortAndCheckIDs(recs []record) error {
	cmp := func(a, b record) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(recs, cmp) {
		slices.SortStableFunc(recs, cmp)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ID == recs[i-1].ID {
			a, b := recs[i-1].offset, recs[i].offset
			if a > b {
				a, b = b, a
			}
			line, _ := position(p.s, a)
			return p.errorAt(b, "instance ID %q appears twice (also on line %d)", abbreviate(recs[i].ID), line)
		}
	}
	return nil
}

// Record field bits, for detecting fields that appear twice.
const (
	fID = 1 << iota
	fName
	fAddress
	fPort
	fTags
	fMeta
	fWeight
	fTTL
	fExpires
	fHealth
)

func (p *parser) record(r *record) error {
	var seen, bit int
	empty, err := p.open('{', "an instance")
	for ; err == nil && !empty; empty, err = p.more('}', "an instance") {
		key, keyOff, err := p.key()
		if err != nil {
			return err
		}
		switch key {
		case "id":
			bit = fID
			r.ID, err = p.str(key)
		case "name":
			bit = fName
			r.Name, err = p.str(key)
		case "address":
			bit = fAddress
			r.Address, err = p.str(key)
		case "port":
			bit = fPort
			r.Port, err = p.int(key)
		case "tags":
			bit = fTags
			r.Tags, err = p.tags()
		case "meta":
			bit = fMeta
			r.Meta, err = p.meta()
		case "weight":
			bit = fWeight
			r.Weight, err = p.int(key)
		case "ttl":
			bit = fTTL
			r.TTL, err = p.duration(key)
		case "expires":
			bit = fExpires
			r.Expires, err = p.time(key)
		case "health":
			bit = fHealth
			var h string
			h, err = p.str(key)
			r.Health = registry.Health(h)
		default:
			return p.errorAt(keyOff, "unknown field %q in an instance (id, name, address, port, tags, meta, weight, ttl, expires, health)", abbreviate(key))
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return p.errorAt(keyOff, "field %q appears twice in an instance", key)
		}
		seen |= bit
	}
	return err
}

func (p *parser) tags() ([]string, error) {
	if p.null() {
		return nil, nil
	}
	var tags []string
	empty, err := p.open('[', "tags")
	for ; err == nil && !empty; empty, err = p.more(']', "tags") {
		t, err := p.str("a tag")
		if err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, err
}

func (p *parser) meta() (map[string]string, error) {
	if p.null() {
		return nil, nil
	}
	var m map[string]string
	empty, err := p.open('{', "meta")
	for ; err == nil && !empty; empty, err = p.more('}', "meta") {
		k, keyOff, err := p.key()
		if err != nil {
			return nil, err
		}
		v, err := p.str("a meta value")
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, p.errorAt(keyOff, "meta key %q appears twice", abbreviate(k))
		}
		if m == nil {
			m = make(map[string]string, 4)
		}
		m[k] = v
	}
	return m, err
}

func (p *parser) duration(what string) (time.Duration, error) {
	off := p.pos
	s, err := p.str(what)
	if err != nil || s == "" {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.errorAt(off, "%s %q is not a duration such as \"10s\" or \"1m30s\"", what, abbreviate(s))
	}
	return d, nil
}

func (p *parser) time(what string) (time.Time, error) {
	off := p.pos
	s, err := p.str(what)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, p.errorAt(off, "%s %q is not an RFC 3339 time such as \"2026-11-26T12:00:00Z\"", what, abbreviate(s))
	}
	return t.UTC(), nil
}

// abbreviate keeps error messages on one line for hostile input.
func abbreviate(s string) string {
	const max = 60
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
