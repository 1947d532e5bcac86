package file

import (
	"testing"
	"time"
)

func BenchmarkDecodeOne(b *testing.B) {
	data := encode(sampleDocument(10000, time.Now()))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, _ = decode(data, decodeMode{service: "svc0042"})
	}
}
