package file

import (
	"maps"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/sdctl/sdctl/registry"
)

// decodeMode says which records a caller needs.
type decodeMode struct {
	// service limits the result to one service's records (it may hold others too); every
	// record when empty.
	service string
	// raw lets the records of a sealed document stay undecoded (see record.raw), for a
	// rewrite that changes only a few of them.
	raw bool
}

// keeps reports whether records of the named service must be decoded.
func (m decodeMode) keeps(name string) bool { return m.service == "" || name == m.service }

// decode parses and validates a registry document; problems are *CorruptError without a path.
// An empty (or blank) file is corrupt. The result refers to data, which the caller must not
// modify afterwards.
//
// The parser is written by hand rather than with encoding/json because `sdctl resolve` reads
// the whole file on every run and must stay fast at 10,000 instances. A sealed document (see
// seal.go) is read line by line, decoding only the records asked for. Otherwise every record
// is parsed into one reused scratch record and validated there, so only the records the
// caller keeps cost allocations, and a broken hand edit is reported whichever service it
// touches. Strings are slices of the document, not copies.
func decode(data []byte, mode decodeMode) (document, error) {
	// The document string shares data's memory: copying megabytes on every read would cost
	// as much as the whole sealed read.
	p := parser{s: unsafe.String(unsafe.SliceData(data), len(data))}
	if doc, ok, err := p.sealed(data, mode); ok {
		return doc, err
	}
	p.pos = 0
	doc, sorted, err := p.document(mode)
	if err != nil || sorted {
		// IDs in strictly increasing order are also unique, the case for every file sdctl wrote.
		return doc, err
	}
	if mode.service != "" {
		// Records out of order (a hand edit) need every ID to find duplicates; such a file is
		// sorted again by the next write.
		return decode(data, decodeMode{})
	}
	return doc, p.sortAndCheckIDs(doc.Instances)
}

// document parses the top level; sorted reports whether instance IDs strictly increase.
func (p *parser) document(mode decodeMode) (doc document, sorted bool, err error) {
	p.ws()
	if p.pos == len(p.s) {
		// sdctl never writes an empty document (even an empty registry has its format line),
		// so this is a file truncated by something else: the most common damage of all.
		return doc, false, p.errorAt(0, "the file is empty; sdctl never writes an empty registry, so it was probably truncated (restore it from a backup, or remove it to start an empty registry)")
	}
	sorted = true
	var seen [4]bool
	formatOK := false
	empty, err := p.open('{', "the document")
	for ; err == nil && !empty; empty, err = p.more('}', "the document") {
		key, keyOff, err := p.key()
		if err != nil {
			return doc, false, err
		}
		i := slices.Index([]string{"format", "revision", "checksum", "instances"}, key)
		if i < 0 {
			return doc, false, p.errorAt(keyOff, "unknown field %q in the document (format, revision, checksum, instances)", abbreviate(key))
		}
		if seen[i] {
			return doc, false, p.errorAt(keyOff, "field %q appears twice", key)
		}
		seen[i] = true
		switch key {
		case "format":
			p.ws()
			off := p.pos
			f, err := p.str("format")
			if err != nil {
				return doc, false, err
			}
			if f != formatV1 && f != formatV2 && f != formatV3 {
				return doc, false, p.errorAt(off, "format %q is not %q, %q or %q: the file was written by another program or a newer sdctl", abbreviate(f), formatV1, formatV2, formatV3)
			}
			formatOK = true
		case "revision":
			n, err := p.int("revision")
			if err != nil {
				return doc, false, err
			}
			if n < 0 {
				return doc, false, p.errorAt(p.pos, "revision %d is negative", n)
			}
			doc.Revision = uint64(n)
		case "checksum":
			// Only the sealed path uses it; here it is just a string.
			if _, err := p.str("checksum"); err != nil {
				return doc, false, err
			}
		case "instances":
			if doc.Instances, sorted, err = p.instances(mode); err != nil {
				return doc, false, err
			}
		}
	}
	if err != nil {
		return doc, false, err
	}
	if p.ws(); p.pos != len(p.s) {
		return doc, false, p.errorf("unexpected %s after the end of the document", p.found())
	}
	if !formatOK {
		return doc, false, p.errorAt(0, "no \"format\": %q field; this is not an sdctl file registry", formatV1)
	}
	return doc, sorted, nil
}

func (p *parser) instances(mode decodeMode) (recs []record, sorted bool, err error) {
	sorted = true
	if p.null() {
		return nil, true, nil
	}
	if mode.service == "" {
		// Files written by sdctl hold one record per line: counting lines sizes the slice once.
		recs = make([]record, 0, strings.Count(p.s[p.pos:], "\n"))
	}
	var (
		r      record
		tags   []string
		meta   = map[string]string{}
		prevID string
		n      int
		empty  bool
	)
	for empty, err = p.open('[', "instances"); err == nil && !empty; empty, err = p.more(']', "instances") {
		n++
		p.ws()
		r = record{offset: p.pos}
		clear(meta)
		if err := p.record(&r, tags[:0], meta); err != nil {
			return nil, false, err
		}
		if cap(r.Tags) > cap(tags) {
			tags = r.Tags // keep the grown buffer for the next record
		}
		if err := r.validate(); err != nil {
			return nil, false, p.errorAt(r.offset, "instance %d (id %q): %v", n, abbreviate(r.ID), err)
		}
		if n > 1 && r.ID <= prevID {
			sorted = false
		}
		prevID = r.ID
		if mode.keeps(r.Name) {
			recs = append(recs, r.detach())
		}
	}
	return recs, sorted, err
}

// detach copies a record parsed into the scratch buffers so that it can be kept.
func (r record) detach() record {
	if len(r.Tags) > 0 {
		r.Tags = slices.Clone(r.Tags)
	} else {
		r.Tags = nil
	}
	if len(r.Meta) > 0 {
		r.Meta = maps.Clone(r.Meta)
	} else {
		r.Meta = nil
	}
	return r
}

// sortAndCheckIDs sorts records that a person put out of order and rejects duplicate IDs,
// which would make Register and Deregister ambiguous.
func (p *parser) sortAndCheckIDs(recs []record) error {
	slices.SortStableFunc(recs, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
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
	fDeclared
	fInitial
	fDeregisterAfter
)

// record parses one instance into r, appending its tags to tags and its metadata to meta
// (which must be empty); r.Tags and r.Meta alias those buffers.
func (p *parser) record(r *record, tags []string, meta map[string]string) error {
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
			r.Tags, err = p.tags(tags)
		case "meta":
			bit = fMeta
			if err = p.meta(meta); err == nil {
				r.Meta = meta
			}
		case "weight":
			bit = fWeight
			r.Weight, err = p.int(key)
			r.Drain = err == nil && r.Weight == 0
		case "ttl":
			bit = fTTL
			r.TTL, err = p.duration(key)
		case "expires":
			bit = fExpires
			r.Expires, err = p.time(key)
		case "health":
			bit = fHealth
			r.Health, err = p.health(key)
		case "declared_health":
			bit = fDeclared
			r.Declared, err = p.health(key)
		case "initial_health":
			bit = fInitial
			r.Initial, err = p.health(key)
		case "deregister_after":
			bit = fDeregisterAfter
			r.DeregisterAfter, err = p.duration(key)
		default:
			return p.errorAt(keyOff, "unknown field %q in an instance (id, name, address, port, tags, meta, weight, ttl, expires, initial_health, deregister_after, health, declared_health)", abbreviate(key))
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return p.errorAt(keyOff, "field %q appears twice in an instance", key)
		}
		seen |= bit
	}
	if r.TTL == 0 {
		// Without a TTL nothing expires; dropping a stray "expires" keeps what readers report
		// the same as what the next write keeps.
		r.Expires = time.Time{}
	}
	return err
}

func (p *parser) tags(dst []string) ([]string, error) {
	if p.null() {
		return dst, nil
	}
	empty, err := p.open('[', "tags")
	for ; err == nil && !empty; empty, err = p.more(']', "tags") {
		t, err := p.str("a tag")
		if err != nil {
			return nil, err
		}
		dst = append(dst, t)
	}
	return dst, err
}

func (p *parser) meta(m map[string]string) error {
	if p.null() {
		return nil
	}
	empty, err := p.open('{', "meta")
	for ; err == nil && !empty; empty, err = p.more('}', "meta") {
		k, keyOff, err := p.key()
		if err != nil {
			return err
		}
		v, err := p.str("a meta value")
		if err != nil {
			return err
		}
		if _, dup := m[k]; dup {
			return p.errorAt(keyOff, "meta key %q appears twice", abbreviate(k))
		}
		m[k] = v
	}
	return err
}

// health reads a health state; record.validate checks it.
func (p *parser) health(what string) (registry.Health, error) {
	h, err := p.str(what)
	return registry.Health(h), err
}

func (p *parser) duration(what string) (time.Duration, error) {
	p.ws()
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
	p.ws()
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
	const limit = 60
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}
