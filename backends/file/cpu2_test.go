package file

import (
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

func TestCPUParts(t *testing.T) {
	data := encode(sampleDocument(10000, time.Now()))
	doc, _ := decode(data, decodeMode{})
	s := string(data)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"count-newlines", func() { _ = strings.Count(s, "\n") }},
		{"crc32", func() { _ = crc32.ChecksumIEEE(data) }},
		{"json.Valid", func() { _ = json.Valid(data) }},
		{"validate-all", func() {
			for i := range doc.Instances {
				_ = doc.Instances[i].validate()
			}
		}},
		{"string-copy", func() { _ = string(data) }},
	} {
		const n = 50
		tc.fn()
		c0, w0 := cpuTime(), time.Now()
		for range n {
			tc.fn()
		}
		t.Logf("%-14s cpu %v/op wall %v/op", tc.name, (cpuTime()-c0)/n, time.Since(w0)/n)
	}
}
