package harness

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/docker/go-connections/nat"
)

func TestPortConfig(t *testing.T) {
	exposed, bindings, err := portConfig(
		[]string{"7000-7001", "53/udp"},
		[]string{"3000/tcp", "127.0.0.1::3001", "8080:3002", "127.0.0.1:5353:53/udp"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for p := range exposed {
		ports = append(ports, string(p))
	}
	slices.Sort(ports)
	if want := []string{"3000/tcp", "3001/tcp", "3002/tcp", "53/udp", "7000/tcp", "7001/tcp"}; !slices.Equal(ports, want) {
		t.Errorf("exposed %v, want %v", ports, want)
	}
	want := nat.PortMap{
		"3000/tcp": {{}},
		"3001/tcp": {{HostIP: "127.0.0.1"}},
		"3002/tcp": {{HostPort: "8080"}},
		"53/udp":   {{HostIP: "127.0.0.1", HostPort: "5353"}},
	}
	if len(bindings) != len(want) {
		t.Errorf("bindings %v, want %v", bindings, want)
	}
	for p, b := range want {
		if !slices.Equal(bindings[p], b) {
			t.Errorf("bindings[%s] = %v, want %v", p, bindings[p], b)
		}
	}

	if e, b, err := portConfig(nil, nil); e != nil || b != nil || err != nil {
		t.Errorf("portConfig(nil, nil) = %v, %v, %v", e, b, err)
	}
	for _, bad := range [][2][]string{{{"x"}, nil}, {nil, {"1:2:3:4"}}, {{"53/sctp2"}, nil}} {
		if _, _, err := portConfig(bad[0], bad[1]); err == nil {
			t.Errorf("portConfig(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestRandomULA(t *testing.T) {
	for range 100 {
		p, err := netip.ParsePrefix(randomULA())
		if err != nil || p.Bits() != 64 || !netip.MustParsePrefix("fd00:5d::/32").Contains(p.Addr()) {
			t.Fatalf("randomULA() = %v, %v", p, err)
		}
	}
}
