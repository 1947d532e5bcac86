package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "indented with trailing newline",
			in:   registry.Service{Name: "web", Instances: 2, Passing: 1},
			want: "{\n  \"name\": \"web\",\n  \"instances\": 2,\n  \"passing\": 1\n}\n",
		},
		{
			name: "no HTML escaping",
			in:   map[string]string{"url": "http://web/?a=1&b=<2>"},
			want: "{\n  \"url\": \"http://web/?a=1&b=<2>\"\n}\n",
		},
		{name: "nil slice is an empty list", in: []registry.Service(nil), want: "[]\n"},
		{name: "nil", in: nil, want: "null\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWrite(t, "WriteJSON", func(w io.Writer) error { return WriteJSON(w, tt.in) }, tt.want, false)
		})
	}
}

func TestWriteJSONError(t *testing.T) {
	checkFailsQuietly(t, "WriteJSON(func)", func(w io.Writer) error { return WriteJSON(w, func() {}) })
}

func TestJSONLines(t *testing.T) {
	tests := []struct {
		name string
		in   []any
		want string
	}{
		{
			name: "one compact line per value",
			in:   []any{registry.Event{Index: 1}, registry.Event{Index: 2, Instances: []registry.Instance{{ID: "a", Name: "web", Address: "10.0.0.1", Port: 80}}}},
			want: `{"index":1,"instances":null}` + "\n" +
				`{"index":2,"instances":[{"id":"a","name":"web","address":"10.0.0.1","port":80}]}` + "\n",
		},
		{name: "no values", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWrite(t, "JSONLines", func(w io.Writer) error {
				jl := NewJSONLines(w)
				for _, v := range tt.in {
					if err := jl.Write(v); err != nil {
						return err
					}
				}
				return nil
			}, tt.want, false)
		})
	}
}

func TestJSONLinesConcurrent(t *testing.T) {
	var buf bytes.Buffer
	jl := NewJSONLines(&buf)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := jl.Write(map[string]string{"value": fmt.Sprintf("%d-%d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(lines), writers*each)
	}
	for _, line := range lines {
		var v map[string]string
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
	}
}
