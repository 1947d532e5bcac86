package hostaddr

import (
	"net"
	"net/netip"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TestOutbound checks the guess against this machine's own interfaces: it is one of them,
// usable by others (not loopback, not unspecified), or "" on a machine without a network.
func TestOutbound(t *testing.T) {
	got := Outbound()
	if got == "" {
		testutil.SkipUnlessRequired(t, "no network interface besides loopback")
	}
	ip, err := netip.ParseAddr(got)
	if err != nil {
		t.Fatalf("Outbound() = %q, not an IP address", got)
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		t.Fatalf("Outbound() = %s, which others cannot reach", got)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(net.IP(ip.AsSlice())) {
			return
		}
	}
	t.Errorf("Outbound() = %s, not an address of this machine (%v)", got, addrs)
}

func TestBridge(t *testing.T) {
	for name, want := range map[string]bool{"docker0": true, "br-1a2b": true, "veth12": true, "eth0": false, "enp3s0": false, "wlan0": false} {
		if got := bridge(name); got != want {
			t.Errorf("bridge(%q) = %v, want %v", name, got, want)
		}
	}
}
