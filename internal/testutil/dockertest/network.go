package dockertest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// NetworkOptions configures Network. The zero value makes an IPv4-only bridge on a subnet the
// engine picks.
type NetworkOptions struct {
	// Subnet is the IPv4 subnet, like "172.30.7.0/24"; empty lets the engine pick one.
	Subnet string
	// IPv6 gives the network an IPv6 subnet as well: IPv6Subnet, or by default a random
	// unique-local fd00:5d:<random>::/64.
	IPv6       bool
	IPv6Subnet string
	// Internal cuts the network off from the outside, like docker network create --internal.
	Internal bool
	// Labels are added to the dockertest labels.
	Labels map[string]string
}

// Network creates a bridge network with a unique name (sdctl-test-net-<RunID>-<n>) and returns
// that name, for Spec.Network. t.Cleanup removes it; remove its containers first (containers
// made by Run in the same test are, as cleanups run last-in first-out).
func Network(t testing.TB, cli *client.Client, opts NetworkOptions) string {
	t.Helper()
	requireMain(t)
	name := uniqueName("net")
	for attempt := 0; ; attempt++ {
		create := network.CreateOptions{
			Driver:   "bridge",
			Internal: opts.Internal,
			Labels:   Labels(opts.Labels),
		}
		var pools []network.IPAMConfig
		if opts.Subnet != "" {
			pools = append(pools, network.IPAMConfig{Subnet: opts.Subnet})
		}
		random := false
		if opts.IPv6 {
			enable := true
			create.EnableIPv6 = &enable
			subnet := opts.IPv6Subnet
			if subnet == "" {
				subnet, random = randomULA(), true
			}
			pools = append(pools, network.IPAMConfig{Subnet: subnet})
		}
		if len(pools) > 0 {
			create.IPAM = &network.IPAM{Driver: "default", Config: pools}
		}

		ctx, done := startCreating(apiTimeout)
		_, err := cli.NetworkCreate(ctx, name, create)
		done()
		if err != nil {
			// Another network may hold the random subnet already: draw again.
			if random && attempt < 5 && strings.Contains(err.Error(), "overlap") {
				continue
			}
			t.Fatalf("dockertest: creating network %s: %v", name, err)
		}
		break
	}
	t.Cleanup(func() {
		ctx, cancel := apiContext()
		defer cancel()
		if err := cli.NetworkRemove(ctx, name); err != nil && !gone(err) {
			t.Errorf("dockertest: removing network %s: %v", name, err)
		}
	})
	return name
}

// randomULA returns fd00:5d:<16 random bits>::/64.
func randomULA() string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("fd00:5d:%x::/64", binary.BigEndian.Uint16(b[:]))
}
