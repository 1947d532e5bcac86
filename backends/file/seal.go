package file

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
)

// A document written by sdctl carries a checksum of everything after its "checksum" line:
//
//	{
//	  "format": "sdctl-file-registry/1",
//	  "revision": 7,
//	  "checksum": "crc32c:5d0f3a1e",
//	  "instances": [
//	    {"id":"web-10.0.0.1-3000","name":"web",...},
//	    ...
//
// When it matches, the bytes are exactly what sdctl validated and wrote, so a reader can skip
// the records of other services instead of parsing and validating all of them: this is what
// keeps `sdctl resolve` at a millisecond on a 10,000-instance file. The checksum guards
// against accidents, not attackers (whoever can write the file can write anything into it).
//
// A person editing the file need not touch the checksum: a mismatch only sends readers down
// the strict path that parses and validates every record, and the next write seals the file
// again.

const (
	headerV1       = "{\n  \"format\": \"" + formatV1 + "\",\n  \"revision\": "
	headerV2       = "{\n  \"format\": \"" + formatV2 + "\",\n  \"revision\": "
	headerV3       = "{\n  \"format\": \"" + formatV3 + "\",\n  \"revision\": "
	checksumPrefix = ",\n  \"checksum\": \"crc32c:"
	instancesOpen  = "  \"instances\": ["
	recordIndent   = "\n    "
	recordsClose   = "\n  ]\n}\n"
	documentClose  = "]\n}\n"
)

// castagnoli is made on first use: a package-level table would be built at start-up by every
// process that links the file backend, sdctl included, whatever the command.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// checksum is CRC-32C, which CPUs compute at several GB/s.
func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli()) }

func putChecksum(dst []byte, sum uint32) {
	for i := 7; i >= 0; i-- {
		dst[i] = hexDigits[sum&0xf]
		sum >>= 4
	}
}

// sealed decodes a document whose checksum matches, parsing in full only the records mode
// asks for and trusting the rest. ok is false when the document is not sealed or not laid out
// exactly as encode writes it; the caller then takes the strict path.
func (p *parser) sealed(data []byte, mode decodeMode) (doc document, ok bool, err error) {
	s := p.s
	if !strings.HasPrefix(s, headerV1) && !strings.HasPrefix(s, headerV2) && !strings.HasPrefix(s, headerV3) {
		return doc, false, nil
	}
	i := len(headerV1) // every header has the same length
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' && j-i < 19 {
		doc.Revision = doc.Revision*10 + uint64(s[j]-'0')
		j++
	}
	if j == i || (s[i] == '0' && j > i+1) || !strings.HasPrefix(s[j:], checksumPrefix) {
		return doc, false, nil
	}
	k := j + len(checksumPrefix)
	if len(s) < k+11 || s[k+8:k+11] != "\",\n" {
		return doc, false, nil
	}
	var want [8]byte
	putChecksum(want[:], checksum(data[k+11:]))
	if s[k:k+8] != string(want[:]) {
		return doc, false, nil
	}

	pos := k + 11
	if !strings.HasPrefix(s[pos:], instancesOpen) {
		return doc, false, nil
	}
	pos += len(instancesOpen)
	if s[pos:] == documentClose {
		return doc, true, nil
	}
	// One record per line: sizing for every line (a few hundred kilobytes at 10,000) is
	// cheaper than growing the slice when most lines belong to the requested service.
	doc.Instances = make([]record, 0, strings.Count(s[pos:], "\n"))
	var (
		prevID string
		tags   []string
		meta   = map[string]string{}
	)
	for n := 1; ; n++ {
		if !strings.HasPrefix(s[pos:], recordIndent) {
			return doc, false, nil
		}
		start := pos + len(recordIndent)
		end := strings.IndexByte(s[start:], '\n')
		if end < 0 {
			return doc, false, nil
		}
		end += start
		last := s[end-1] != ','
		if !last {
			end--
		}
		p.pos = start
		id, name, ok := p.idAndName()
		if !ok || (n > 1 && id <= prevID) {
			return doc, false, nil
		}
		prevID = id
		switch {
		case mode.raw:
			doc.Instances = append(doc.Instances, record{ID: id, Name: name, raw: s[start:end]})
		case mode.keeps(name):
			r := record{offset: start}
			clear(meta)
			p.pos = start
			if err := p.record(&r, tags[:0], meta); err != nil || p.pos != end {
				return doc, false, nil //nolint:nilerr // not sealed by sdctl: the caller reads it the slow way
			}
			if cap(r.Tags) > cap(tags) {
				tags = r.Tags
			}
			// Sealed records were valid when written, but the rules may have tightened since.
			if err := r.validate(); err != nil {
				return doc, true, p.errorAt(start, "instance %d (id %q): %v", n, abbreviate(r.ID), err)
			}
			doc.Instances = append(doc.Instances, r.detach())
		}
		pos = end
		if last {
			break
		}
		pos++ // the ','
	}
	if s[pos:] != recordsClose {
		return doc, false, nil
	}
	return doc, true, nil
}

// decoded returns the i-th record, decoding it first if it is still raw.
func (d *document) decoded(i int) (*record, error) {
	r := &d.Instances[i]
	if r.raw == "" {
		return r, nil
	}
	// Positions within the line would be misleading, so problems name the instance instead.
	p := parser{s: r.raw}
	dec := record{}
	if err := p.record(&dec, nil, map[string]string{}); err != nil {
		problem := err.Error()
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			problem = ce.Problem
		}
		return nil, &CorruptError{Problem: fmt.Sprintf("instance %q: %s", abbreviate(r.ID), problem)}
	}
	if err := dec.validate(); err != nil {
		return nil, &CorruptError{Problem: fmt.Sprintf("instance %q: %v", abbreviate(r.ID), err)}
	}
	*r = dec.detach()
	return r, nil
}

// idAndName reads the start of a record as encode writes it: {"id":"...","name":"...".
func (p *parser) idAndName() (id, name string, ok bool) {
	if !strings.HasPrefix(p.s[p.pos:], `{"id":`) {
		return "", "", false
	}
	p.pos += len(`{"id":`)
	id, err := p.str("id")
	if err != nil || !strings.HasPrefix(p.s[p.pos:], `,"name":`) {
		return "", "", false
	}
	p.pos += len(`,"name":`)
	name, err = p.str("name")
	return id, name, err == nil
}
