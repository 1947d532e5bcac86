// Package hostaddr guesses the address other machines reach this one at: the default for
// `sdctl register :PORT` and for the ports `sdctl watch` sees published on a local engine.
package hostaddr

import (
	"net"
	"strings"
)

// Outbound returns this machine's address as others most likely see it: the source address
// of the default route (found with a UDP "connection", which sends nothing), else the first
// global unicast IPv4 address of an interface that is up and is neither loopback nor a
// container bridge. It returns "" when there is none.
func Outbound() string {
	if conn, err := net.Dial("udp", "192.0.2.1:9"); err == nil { // TEST-NET-1: never routed on the internet
		addr, ok := conn.LocalAddr().(*net.UDPAddr)
		conn.Close()
		if ok && !addr.IP.IsUnspecified() && !addr.IP.IsLoopback() {
			return addr.IP.String()
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 || bridge(iface.Name) {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

// bridge reports whether an interface is one Docker creates for its containers.
func bridge(name string) bool {
	return strings.HasPrefix(name, "docker") || strings.HasPrefix(name, "br-") || strings.HasPrefix(name, "veth")
}
