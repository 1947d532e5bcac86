package harness

import (
	"errors"
	"net"
	"strconv"
	"sync"
)

var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// FreePorts returns n distinct ports that are free on 127.0.0.1 for both TCP and UDP right now
// (Consul's DNS and gossip listen on both), never handing out the same port twice in a process.
// Another process may still take one before the server binds it: the Start functions retry on
// new ports when that happens.
func FreePorts(n int) ([]int, error) {
	ports.Lock()
	defer ports.Unlock()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 100*n {
			return nil, errors.New("no free ports on 127.0.0.1")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			_ = pc.Close()
		}
		l.Close()
		if err != nil || ports.used[port] {
			continue
		}
		ports.used[port] = true
		out = append(out, port)
	}
	return out, nil
}

// FreeAddr is "127.0.0.1:PORT" of one port from FreePorts.
func FreeAddr() (string, error) {
	p, err := FreePorts(1)
	if err != nil {
		return "", err
	}
	return loopback(p[0]), nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
