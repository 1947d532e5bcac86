package output

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"go.yaml.in/yaml/v3"
)

type base struct {
	Kind  string `json:"kind"`
	Shade string `json:"shade,omitempty"`
}

type embedding struct {
	base
	Name   string `json:"name"`
	Kind   string `json:"type"`
	hidden string
	Skip   string `json:"-"`
	Dash   string `json:"-,"` //nolint:staticcheck // a field named "-", as encoding/json allows
	Plain  int
}

type upper string

func (u upper) MarshalJSON() ([]byte, error) {
	return []byte(`{"z":"` + strings.ToUpper(string(u)) + `","a":1}`), nil
}

type cycle struct {
	Next *cycle `json:"next"`
}

func TestWriteYAML(t *testing.T) {
	expires := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ttl := 90 * time.Second
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "instance keeps JSON names and order, durations and times readable",
			in: registry.Instance{
				ID: "web-1", Name: "web", Address: "fd00::5", Port: 3000,
				Tags:    []string{"http"},
				Meta:    map[string]string{"zone": "b", "version": "1.2"},
				TTL:     ttl,
				Checks:  []registry.Check{{Kind: registry.CheckHTTP, Target: "http://[fd00::5]:3000/health", Interval: 10 * time.Second}},
				Health:  registry.HealthPassing,
				Expires: expires,
			},
			want: `id: web-1
name: web
address: fd00::5
port: 3000
tags:
  - http
meta:
  version: "1.2"
  zone: b
ttl: 1m30s
checks:
  - kind: http
    target: http://[fd00::5]:3000/health
    interval: 10s
health: passing
expires: "2026-01-02T03:04:05Z"
`,
		},
		{
			name: "omitempty and omitzero fields are left out",
			in:   registry.Instance{ID: "a", Name: "web", Address: "10.0.0.1", Port: 80},
			want: "id: a\nname: web\naddress: 10.0.0.1\nport: 80\n",
		},
		{
			name: "strings that read as other types are quoted",
			in:   []string{"yes", "off", "123", "1.5", "null", "", "~", "1:20", "true", "plain"},
			want: "- \"yes\"\n- \"off\"\n- \"123\"\n- \"1.5\"\n- \"null\"\n- \"\"\n- \"~\"\n- \"1:20\"\n- \"true\"\n- plain\n",
		},
		{
			name: "nil slice at the top is an empty list",
			in:   []registry.Service(nil),
			want: "[]\n",
		},
		{
			name: "nil and empty values inside",
			in: map[string]any{
				"nil-map": map[string]string(nil), "empty-map": map[string]string{},
				"nil-list": []int(nil), "empty-list": []int{}, "nil": nil,
			},
			want: "empty-list: []\nempty-map: {}\nnil: null\nnil-list: null\nnil-map: null\n",
		},
		{
			name: "embedded fields are promoted and the shallower field wins",
			in:   embedding{base: base{Kind: "inner"}, Name: "m", Kind: "outer", hidden: "h", Skip: "s", Dash: "d", Plain: 7},
			want: "kind: inner\nname: m\ntype: outer\n'-': d\nPlain: 7\n",
		},
		{
			name: "JSON marshalers keep their key order",
			in:   map[string]any{"v": upper("x")},
			want: "v:\n  z: X\n  a: 1\n",
		},
		{
			// A bare duration or time carries the same data as in JSON; the domain types choose
			// readable forms through their MarshalJSON.
			name: "text marshalers and pointers",
			in:   map[string]any{"addr": netip.MustParseAddr("::1"), "ttl": &ttl, "when": &expires},
			want: "addr: ::1\nttl: 90000000000\nwhen: \"2026-01-02T03:04:05Z\"\n",
		},
		{
			name: "numbers, bytes and int keys",
			in:   map[int]any{2: []byte("hi"), 1: 2.5, 10: json.Number("7"), 3: uint8(4)},
			want: "\"1\": 2.5\n\"10\": 7\n\"2\": aGk=\n\"3\": 4\n",
		},
		{
			name: "multi-line strings are literal blocks",
			in:   map[string]string{"note": "one\ntwo"},
			want: "note: |-\n  one\n  two\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWrite(t, "WriteYAML", func(w io.Writer) error { return WriteYAML(w, tt.in) }, tt.want, false)
		})
	}
}

// TestWriteYAMLMatchesJSON checks that YAML and JSON carry the same data.
func TestWriteYAMLMatchesJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{name: "services", in: []registry.Service{{Name: "web", Instances: 3, Passing: 2, Tags: []string{"a", "b"}}, {Name: "db"}}},
		{name: "cluster status", in: registry.ClusterStatus{Backend: "consul", Leader: "s1", Members: []registry.Member{{Name: "s1", Address: "10.0.0.1:8300", Role: "server", Leader: true, Health: "alive", Details: map[string]string{"dc": "dc1"}}}}},
		{name: "instance", in: registry.Instance{ID: "a", Name: "web", Address: "10.0.0.1", Port: 80, TTL: time.Minute, Checks: []registry.Check{{Kind: registry.CheckTCP, Target: "10.0.0.1:80", Interval: time.Second}}}},
		{name: "embedded fields", in: embedding{base: base{Kind: "inner", Shade: "s"}, Name: "m", Kind: "outer", Dash: "d", Plain: 7}},
		{name: "info", in: registry.Info{Name: "file", Version: "1", Capabilities: []registry.Capability{registry.CapTTL}, Options: []registry.Option{{Key: "path", Help: "where", Env: []string{"X"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var y, j bytes.Buffer
			if err := WriteYAML(&y, tt.in); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&j, tt.in); err != nil {
				t.Fatal(err)
			}
			var fromYAML, fromJSON any
			if err := yaml.Unmarshal(y.Bytes(), &fromYAML); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(j.Bytes(), &fromJSON); err != nil {
				t.Fatal(err)
			}
			// Round-trip the YAML data through JSON so numbers compare as float64 on both sides.
			b, err := json.Marshal(fromYAML)
			if err != nil {
				t.Fatal(err)
			}
			var yamlAsJSON any
			if err := json.Unmarshal(b, &yamlAsJSON); err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, yamlAsJSON), mustJSON(t, fromJSON); got != want {
				t.Errorf("YAML data %s differs from JSON data %s", got, want)
			}
		})
	}
}

func TestWriteYAMLErrors(t *testing.T) {
	loop := &cycle{}
	loop.Next = loop
	tests := []struct {
		name string
		in   any
	}{
		{name: "cycle", in: loop},
		{name: "function", in: map[string]any{"f": func() {}}},
		{name: "channel", in: make(chan int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFailsQuietly(t, "WriteYAML", func(w io.Writer) error { return WriteYAML(w, tt.in) })
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
