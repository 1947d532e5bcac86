package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// sameRecords compares decoded records field by field (times by instant).
func sameRecords(a, b []record) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d records, want %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Name != y.Name || x.Address != y.Address || x.Port != y.Port ||
			x.Weight != y.Weight || x.TTL != y.TTL || !x.Expires.Equal(y.Expires) || x.Health != y.Health ||
			x.Declared != y.Declared || !slices.Equal(x.Tags, y.Tags) || !maps.Equal(x.Meta, y.Meta) {
			return fmt.Errorf("record %d = %+v, want %+v", i, x, y)
		}
	}
	return nil
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := sampleDocument(n, time.Now())
			want.Instances = append(want.Instances, record{
				ID: "odd-\"quoted\"\\-é", Name: "zz", Address: "::1", Port: 1,
				Meta: map[string]string{"k": "line\nbreak\ttab\x01<&>\u2028"}, Health: registry.HealthMaintenance,
				Declared: registry.HealthWarning,
			})
			slices.SortFunc(want.Instances, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
			data := encode(want)
			if lines := strings.Count(string(data), "\n"); lines != len(want.Instances)+7 {
				t.Errorf("encoded document has %d lines, want one per instance plus 7", lines)
			}
			if !json.Valid(data) {
				t.Fatalf("encoded document is not valid JSON:\n%s", data)
			}
			for _, mode := range []decodeMode{{}, {raw: true}} {
				got, err := decode(slices.Clone(data), mode)
				if err != nil {
					t.Fatalf("decode(%+v): %v", mode, err)
				}
				if got.Revision != want.Revision {
					t.Errorf("revision = %d, want %d", got.Revision, want.Revision)
				}
				// Raw records must re-encode to the same bytes.
				if again := encode(&got); !bytes.Equal(again, data) {
					t.Errorf("decode(%+v) then encode changed the document", mode)
				}
				if !mode.raw {
					if err := sameRecords(got.Instances, want.Instances); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
}

// TestFormatVersion checks that version 2 is written only for documents that need it, also
// when their records stay raw, and that both versions are read.
func TestFormatVersion(t *testing.T) {
	marker := func(data []byte) string {
		var jd struct{ Format string }
		if err := json.Unmarshal(data, &jd); err != nil {
			t.Fatal(err)
		}
		return jd.Format
	}
	doc := sampleDocument(5, time.Now())
	// A metadata key named like the field is not a declaration.
	doc.Instances[1].Meta = map[string]string{"a": "1", "declared_health": "critical"}
	doc.Instances[2].Health = registry.HealthMaintenance
	data := encode(doc)
	if got := marker(data); got != formatV1 {
		t.Fatalf("a document without declared health is written as %q, want %q", got, formatV1)
	}
	for _, mode := range []decodeMode{{}, {raw: true}} {
		got, err := decode(slices.Clone(data), mode)
		if err != nil {
			t.Fatal(err)
		}
		if m := marker(encode(&got)); m != formatV1 {
			t.Errorf("decode(%+v) then encode of a version 1 document wrote %q", mode, m)
		}
	}

	for _, h := range []registry.Health{registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance} {
		doc.Instances[3].Declared = h
		data = encode(doc)
		if got := marker(data); got != formatV2 {
			t.Fatalf("a document with declared health %q is written as %q, want %q", h, got, formatV2)
		}
		for _, mode := range []decodeMode{{}, {raw: true}, {service: doc.Instances[3].Name}} {
			got, err := decode(slices.Clone(data), mode)
			if err != nil {
				t.Fatalf("decode(%+v): %v", mode, err)
			}
			if mode.service == "" {
				if again := encode(&got); !bytes.Equal(again, data) {
					t.Errorf("decode(%+v) then encode changed the document:\n%s\nwant\n%s", mode, again, data)
				}
			}
			i, _ := got.find(doc.Instances[3].ID)
			if r, err := got.decoded(i); err != nil || r.Declared != h {
				t.Errorf("decode(%+v): declared health %q (%v), want %q", mode, r.Declared, err, h)
			}
		}
	}

	// Dropping the last declaration goes back to version 1.
	doc.Instances[3].Declared = ""
	if got := marker(encode(doc)); got != formatV1 {
		t.Errorf("after the last declaration is dropped the document is written as %q, want %q", got, formatV1)
	}
}

func TestSealedFastPath(t *testing.T) {
	doc := sampleDocument(30, time.Now())
	data := encode(doc)
	sealed := func(data []byte) bool {
		p := parser{s: string(data)}
		_, ok, _ := p.sealed(data, decodeMode{service: "svc0001"})
		return ok
	}
	if !sealed(data) {
		t.Fatal("a document written by encode is not read as sealed")
	}
	for name, edit := range map[string]func(string) string{
		"RecordEdited":   func(s string) string { return strings.Replace(s, `"port":3001`, `"port":3009`, 1) },
		"Reindented":     func(s string) string { return strings.Replace(s, "\n    {", "\n  {", 1) },
		"ChecksumEdited": func(s string) string { return strings.Replace(s, `"crc32c:`, `"crc32c:0`, 1)[:len(s)] },
		"RevisionPadded": func(s string) string { return strings.Replace(s, `"revision": `, `"revision": 0`, 1) },
		"TrailingSpace":  func(s string) string { return s + " " },
	} {
		t.Run(name, func(t *testing.T) {
			edited := []byte(edit(string(data)))
			if bytes.Equal(edited, data) {
				t.Fatal("the edit changed nothing")
			}
			if sealed(edited) {
				t.Fatal("an edited document is still read as sealed")
			}
		})
	}
}

func TestDecodeHandEdited(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []record
	}{
		{"NoInstances", `{"format": "sdctl-file-registry/1"}`, nil},
		{"NullInstances", `{"format": "sdctl-file-registry/1", "instances": null}`, nil},
		{"PrettyPrintedAndReordered", `{
			"instances": [
				{
					"port": 80,
					"address": "web.internal",
					"name": "web",
					"id": "web-2",
					"tags": ["a", "b"],
					"meta": {"k": "v"}
				},
				{"id": "web-1", "name": "web", "address": "10.0.0.1", "port": 3000, "tags": null, "meta": null, "weight": null}
			],
			"revision": 3,
			"format": "sdctl-file-registry/1"
		}`, []record{
			{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000},
			{ID: "web-2", Name: "web", Address: "web.internal", Port: 80, Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}},
		}},
		{"StaleChecksum", `{"format": "sdctl-file-registry/1", "checksum": "crc32c:00000000", "instances": [
			{"id":"db-1","name":"db","address":"10.0.0.9","port":5432,"health":"maintenance"}]}`,
			[]record{{ID: "db-1", Name: "db", Address: "10.0.0.9", Port: 5432, Health: registry.HealthMaintenance}}},
		{"Escapes", `{"format": "sdctl-file-registry/1", "instances": [
			{"id":"a\u00e9\ud83d\ude00","name":"a","address":"10.0.0.9","port":1,"meta":{"k":"\"\\\/\b\f\n\r\t"}}]}`,
			[]record{{ID: "aé😀", Name: "a", Address: "10.0.0.9", Port: 1, Meta: map[string]string{"k": "\"\\/\b\f\n\r\t"}}}},
		{"DeclaredHealth", `{"format": "sdctl-file-registry/2", "instances": [
			{"id":"a-1","name":"a","address":"10.0.0.9","port":1,"declared_health":"critical","health":"maintenance"}]}`,
			[]record{{ID: "a-1", Name: "a", Address: "10.0.0.9", Port: 1, Health: registry.HealthMaintenance, Declared: registry.HealthCritical}}},
		{"TTL", `{"format": "sdctl-file-registry/1", "instances": [
			{"id":"a-1","name":"a","address":"10.0.0.9","port":1,"ttl":"1m30s","expires":"2026-11-26T12:00:00+01:00"}]}`,
			[]record{{ID: "a-1", Name: "a", Address: "10.0.0.9", Port: 1, TTL: 90 * time.Second, Expires: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)}}},
		{"TTLCheck", `{"format": "sdctl-file-registry/3", "instances": [
			{"id":"a-1","name":"a","address":"10.0.0.9","port":1,"ttl":"10s","expires":"2026-11-26T12:00:00Z","initial_health":"warning","deregister_after":"1m"}]}`,
			[]record{{ID: "a-1", Name: "a", Address: "10.0.0.9", Port: 1, TTL: 10 * time.Second, Expires: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
				Initial: registry.HealthWarning, DeregisterAfter: time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []decodeMode{{}, {raw: true}} {
				doc, err := decode([]byte(tc.doc), mode)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if err := sameRecords(doc.Instances, tc.want); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeCorrupt(t *testing.T) {
	const head = `{"format": "sdctl-file-registry/1", "instances": [` + "\n"
	const web1 = `{"id":"web-1","name":"web","address":"10.0.0.1","port":3000}`
	for _, tc := range []struct {
		name      string
		doc       string
		line, col int
		problem   string
	}{
		{"Garbage", "hello", 1, 1, `expected an object for the document, found 'h'`},
		{"Array", "[]", 1, 1, `expected an object`},
		{"Truncated", head + web1 + ",\n" + `{"id":"web-2","na`, 3, 18, "the file ends inside a string"},
		{"TruncatedAfterValue", head + web1, 2, len(web1) + 1, "expected ',' or ']' in instances, found end of file"},
		{"TrailingData", head + web1 + "]}\n}", 3, 1, `unexpected '}' after the end of the document`},
		{"TrailingComma", head + web1 + ",\n]}", 3, 1, `expected an object for an instance, found ']'`},
		{"NoFormat", `{"instances": []}`, 1, 1, `no "format"`},
		{"Empty", "", 1, 1, "the file is empty"},
		{"Whitespace", " \n\t\n", 1, 1, "the file is empty"},
		{"NewerFormat", `{"format": "sdctl-file-registry/9", "instances": []}`, 1, 12, "a newer sdctl"},
		{"InitialHealthWithoutTTL", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"initial_health":"warning"}`, 2, 1, `ttl: initial_health and deregister_after need a ttl`},
		{"BadInitialHealth", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"ttl":"1s","initial_health":"maintenance"}`, 2, 1, `initial_health: "maintenance" is not warning or critical`},
		{"BadDeregisterAfter", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"ttl":"1s","deregister_after":"soon"}`, 2, 88, `deregister_after "soon" is not a duration`},
		{"UnknownTopField", `{"format": "sdctl-file-registry/1", "instance": []}`, 1, 37, `unknown field "instance"`},
		{"UnknownField", head + `{"id":"web-1","name":"web","adress":"10.0.0.1","port":3000}`, 2, 28, `unknown field "adress"`}, //nolint:misspell // the typo is the test
		{"DuplicateField", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":3000,"port":1}`, 2, 61, `"port" appears twice`},
		{"InvalidInstance", head + web1 + ",\n" + `{"id":"web-2","name":"web","address":"10.0.0.1","port":0}`, 3, 1, `instance 2 (id "web-2"): port: port 0 is out of range`},
		{"BadName", head + `{"id":"web-2","name":"web service","address":"10.0.0.1","port":1}`, 2, 1, `instance 1 (id "web-2"): name:`},
		{"MissingAddress", head + `{"id":"web-2","name":"web","port":1}`, 2, 1, `address is empty`},
		{"DuplicateID", head + web1 + ",\n" + web1 + "]}", 3, 1, `instance ID "web-1" appears twice (also on line 2)`},
		{"DuplicateIDUnsorted", head + web1 + ",\n" + `{"id":"a-1","name":"a","address":"10.0.0.1","port":1},` + "\n" + web1 + "]}", 4, 1, `"web-1" appears twice (also on line 2)`},
		{"BadHealth", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"health":"sick"}`, 2, 1, `health: "sick" is not passing`},
		{"BadDeclaredHealth", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"declared_health":"Critical"}]}`, 2, 1, `declared_health: "Critical" is not passing`},
		{"DuplicateDeclaredHealth", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"declared_health":"passing","declared_health":"critical"}`, 2, 86, `"declared_health" appears twice`},
		{"BadTTL", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"ttl":"10 sec"}`, 2, 64, `ttl "10 sec" is not a duration`},
		{"TTLNumber", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"ttl":10}`, 2, 64, `expected a string for ttl`},
		{"BadExpires", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"expires":"tomorrow"}`, 2, 68, `not an RFC 3339 time`},
		{"FractionalPort", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":3000.5}`, 2, 56, `port must be a whole number`},
		{"HugePort", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":99999999999999999999}`, 2, 56, `port is too large`},
		{"LeadingZero", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":080}`, 2, 56, `leading zero`},
		{"StringPort", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":"80"}`, 2, 56, `expected a number for port, found '"'`},
		{"ControlCharacter", head + "{\"id\":\"web\t1\"}", 2, 11, `control character '\t'`},
		{"BadEscape", head + `{"id":"web\x1"}`, 2, 11, `invalid escape \x`},
		{"LoneSurrogate", head + `{"id":"web\ud800"}`, 2, 11, `lone UTF-16 surrogate`},
		{"InvalidUTF8", head + "{\"id\":\"web\xff\"}", 2, 11, `invalid UTF-8`},
		{"DuplicateMeta", head + `{"id":"web-1","name":"web","address":"10.0.0.1","port":1,"meta":{"a":"1","a":"2"}}`, 2, 74, `meta key "a" appears twice`},
		{"MissingColon", `{"format" "sdctl-file-registry/1"}`, 1, 11, `expected ':' after field name "format"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode([]byte(tc.doc), decodeMode{service: "web"})
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("decode: got %v, want a *CorruptError", err)
			}
			if errors.Is(err, registry.ErrInvalid) {
				t.Errorf("a corrupt file reads as invalid user input: %v", err)
			}
			if !strings.Contains(ce.Problem, tc.problem) {
				t.Errorf("problem = %q, want it to contain %q", ce.Problem, tc.problem)
			}
			if ce.Line != tc.line || ce.Column != tc.col {
				t.Errorf("position = %d:%d, want %d:%d (problem %q)", ce.Line, ce.Column, tc.line, tc.col, ce.Problem)
			}
		})
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	err := &CorruptError{Path: "/data/registry.json", Line: 3, Column: 7, Problem: "unterminated string"}
	want := "/data/registry.json:3:7: corrupt file registry: unterminated string"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %q, want it to start with %q", err.Error(), want)
	}
}

// FuzzDecode checks that the parser never panics and agrees with encoding/json: whatever it
// accepts is valid JSON that encoding/json decodes to the same values, every record in it is
// valid, and it survives an encode/decode round trip in every decode mode.
func FuzzDecode(f *testing.F) {
	f.Add(encode(sampleDocument(3, time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))))
	f.Add([]byte(`{"format": "sdctl-file-registry/1", "instances": [{"id":"a","name":"a","address":"::1","port":1,"meta":{"k":"\u00e9"}}]}`))
	f.Add([]byte(`{"format": "sdctl-file-registry/2", "instances": [{"id":"a","name":"a","address":"::1","port":1,"health":"critical","declared_health":"warning"}]}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := slices.Clone(data)
		doc, err := decode(data, decodeMode{})
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("decode error is %T, not *CorruptError: %v", err, err)
			}
			return
		}
		for i := range doc.Instances {
			if err := doc.Instances[i].validate(); err != nil {
				t.Fatalf("decode accepted an invalid record: %v", err)
			}
			if i > 0 && doc.Instances[i-1].ID >= doc.Instances[i].ID {
				t.Fatalf("records not sorted by unique ID: %q then %q", doc.Instances[i-1].ID, doc.Instances[i].ID)
			}
		}
		if len(bytes.TrimSpace(orig)) > 0 {
			checkAgainstEncodingJSON(t, orig, doc)
		}

		data2 := encode(&doc)
		doc2, err := decode(data2, decodeMode{})
		if err != nil {
			t.Fatalf("decoding our own encoding: %v\n%s", err, data2)
		}
		if err := sameRecords(doc2.Instances, doc.Instances); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		for _, r := range doc.Instances {
			one, err := decode(slices.Clone(orig), decodeMode{service: r.Name})
			if err != nil {
				t.Fatalf("decode for service %q: %v", r.Name, err)
			}
			var want []record
			for _, x := range doc.Instances {
				if x.Name == r.Name {
					want = append(want, x)
				}
			}
			var got []record
			for _, x := range one.Instances {
				if x.Name == r.Name {
					got = append(got, x)
				}
			}
			if err := sameRecords(got, want); err != nil {
				t.Fatalf("decode for service %q: %v", r.Name, err)
			}
		}
		raw, err := decode(slices.Clone(orig), decodeMode{raw: true})
		if err != nil {
			t.Fatalf("raw decode: %v", err)
		}
		if again, err := decode(encode(&raw), decodeMode{}); err != nil || sameRecords(again.Instances, doc.Instances) != nil {
			t.Fatalf("raw decode then encode lost data: %v", err)
		}
	})
}

// jsonDocument mirrors the file format for encoding/json.
type jsonDocument struct {
	Format    string `json:"format"`
	Revision  uint64 `json:"revision"`
	Checksum  string `json:"checksum"`
	Instances []struct {
		ID       string            `json:"id"`
		Name     string            `json:"name"`
		Address  string            `json:"address"`
		Port     int               `json:"port"`
		Tags     []string          `json:"tags"`
		Meta     map[string]string `json:"meta"`
		Weight   int               `json:"weight"`
		TTL      string            `json:"ttl"`
		Expires  string            `json:"expires"`
		Health   string            `json:"health"`
		Declared string            `json:"declared_health"`
	} `json:"instances"`
}

func checkAgainstEncodingJSON(t *testing.T, data []byte, doc document) {
	var jd jsonDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jd); err != nil {
		t.Fatalf("decode accepted what encoding/json rejects: %v", err)
	}
	if jd.Revision != doc.Revision || len(jd.Instances) != len(doc.Instances) {
		t.Fatalf("encoding/json sees revision %d and %d instances, decode %d and %d",
			jd.Revision, len(jd.Instances), doc.Revision, len(doc.Instances))
	}
	byID := map[string]record{}
	for _, r := range doc.Instances {
		byID[r.ID] = r
	}
	for _, j := range jd.Instances {
		r, ok := byID[j.ID]
		if !ok || r.Name != j.Name || r.Address != j.Address || r.Port != j.Port || r.Weight != j.Weight ||
			string(r.Health) != j.Health || string(r.Declared) != j.Declared || !slices.Equal(r.Tags, j.Tags) && len(r.Tags)+len(j.Tags) > 0 ||
			!maps.Equal(r.Meta, j.Meta) {
			t.Fatalf("encoding/json reads instance %+v, decode %+v", j, r)
		}
	}
}
