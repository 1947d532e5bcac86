package spec

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/sdctl/sdctl/registry"
)

// FuzzBuildSpec feeds Build arbitrary metadata, images, network modes, ports and networks.
// Seeds live in testdata/fuzz/FuzzBuildSpec/.
//
//	env:    environment entries, one per line
//	labels: labels, one KEY=VALUE per line
//	ports:  comma-separated "PORT/PROTO" (exposed only) or "PORT/PROTO=HOSTIP|HOSTPORT" (one binding;
//	        repeat the port for more)
//	nets:   semicolon-separated "NAME=IPV4,IPV6"
//	flags:  bit 0 internal, 1 explicit, 2 --ip, 3 --use-ip-from-label, 4 --network, 5 no default IP,
//	        6 healthy, 7 starting
func FuzzBuildSpec(f *testing.F) {
	f.Add("SERVICE_NAME=web\nSERVICE_TAGS=a,b\\,c", "SERVICE_80_CHECK_HTTP=/health", "nginx:1.27", "bridge",
		"80/tcp=0.0.0.0|8080,443/tcp", "bridge=172.17.0.2,", uint8(0))
	f.Add("SERVICE_ID=x\nSERVICE_CHECK_TTL=15", "ip=10.0.0.1/24\nSERVICE_NETWORK=b", "sha256:00", "mynet",
		"53/udp,53/tcp,9000", "mynet=10.1.0.2,;b=,2001:db8::2", uint8(0b1101))
	f.Add("", "", "", "host", "80", "", uint8(0b10100011))
	f.Add("SERVICE_IGNORE=1", "", "x", "container:abc", "1/udp", "", uint8(1))
	f.Fuzz(func(t *testing.T, env, labels, image, mode, ports, nets string, flags uint8) {
		c, o := fuzzSpecInput(env, labels, image, mode, ports, nets, flags)
		s := Build(c, o)
		if again := Build(c, o); !reflect.DeepEqual(s, again) {
			t.Fatalf("not deterministic:\n%+v\n%+v", s, again)
		}
		if s.Ignored != "" && len(s.Instances) > 0 {
			t.Fatalf("ignored (%s) with instances %+v", s.Ignored, s.Instances)
		}
		for i, in := range s.Instances {
			if err := in.Validate(); err != nil {
				t.Fatalf("instance %+v does not validate: %v", in, err)
			}
			if i > 0 && s.Instances[i-1].ID >= in.ID {
				t.Fatalf("instances not sorted by unique ID: %q then %q", s.Instances[i-1].ID, in.ID)
			}
			if in.Meta[MetaSpec] != Hash(in) || in.Meta[MetaNode] != o.Node || in.Meta[MetaContainer] != c.ID {
				t.Fatalf("ownership marks wrong: %v", in.Meta)
			}
		}
		for i, p := range s.Problems {
			if i > 0 && (s.Problems[i-1].Key > p.Key || s.Problems[i-1] == p) {
				t.Fatalf("problems not sorted or duplicated: %q", s.Problems)
			}
			for _, field := range []string{p.Key, p.Reason, p.Container} {
				if !utf8.ValidString(field) || strings.ContainsAny(field, "\n\r") {
					t.Fatalf("problem is not one line of UTF-8: %q", p)
				}
			}
		}
		for _, sk := range s.Skipped {
			if !utf8.ValidString(sk.Port+sk.Reason) || strings.ContainsAny(sk.Port+sk.Reason, "\n\r") {
				t.Fatalf("skip is not one line of UTF-8: %q", sk)
			}
		}
	})
}

func fuzzSpecInput(env, labels, image, mode, ports, nets string, flags uint8) (container.InspectResponse, Options) {
	c := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:         strings.Repeat("cd", 32),
			Name:       "/fuzz",
			State:      &container.State{Running: true},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)},
		},
		Config: &container.Config{
			Image:        image,
			Env:          strings.Split(env, "\n"),
			Labels:       map[string]string{},
			ExposedPorts: nat.PortSet{},
		},
		NetworkSettings: &container.NetworkSettings{
			NetworkSettingsBase: container.NetworkSettingsBase{Ports: nat.PortMap{}},
			Networks:            map[string]*network.EndpointSettings{},
		},
	}
	for _, l := range strings.Split(labels, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			c.Config.Labels[k] = v
		}
	}
	if ports != "" {
		for _, p := range strings.Split(ports, ",") {
			port, binding, published := strings.Cut(p, "=")
			c.Config.ExposedPorts[nat.Port(port)] = struct{}{}
			list := c.NetworkSettings.Ports[nat.Port(port)]
			if published {
				ip, hostPort, _ := strings.Cut(binding, "|")
				list = append(list, nat.PortBinding{HostIP: ip, HostPort: hostPort})
			}
			c.NetworkSettings.Ports[nat.Port(port)] = list
		}
	}
	if nets != "" {
		for _, n := range strings.Split(nets, ";") {
			name, ips, _ := strings.Cut(n, "=")
			if ips == "nil" {
				c.NetworkSettings.Networks[name] = nil
				continue
			}
			v4, v6, _ := strings.Cut(ips, ",")
			c.NetworkSettings.Networks[name] = &network.EndpointSettings{IPAddress: v4, GlobalIPv6Address: v6}
		}
	}
	switch {
	case flags&(1<<6) != 0:
		c.State.Health = &container.Health{Status: container.Healthy}
	case flags&(1<<7) != 0:
		c.State.Health = &container.Health{Status: container.Starting}
	}
	o := Options{
		Node:      "fuzz-node",
		Internal:  flags&1 != 0,
		Explicit:  flags&2 != 0,
		DefaultIP: "192.0.2.1",
		ForceTags: []string{"forced", "udp"},
	}
	if flags&4 != 0 {
		o.HostIP = "198.51.100.1"
	}
	if flags&8 != 0 {
		o.IPFromLabel = "ip"
	}
	if flags&16 != 0 {
		o.Network = "b"
	}
	if flags&32 != 0 {
		o.DefaultIP = ""
	}
	return c, o
}

// TestFuzzSpecSeeds keeps the seed inputs meaningful: they must produce instances, not only
// rejections, or the fuzzer starts from nothing interesting.
func TestFuzzSpecSeeds(t *testing.T) {
	c, o := fuzzSpecInput("SERVICE_NAME=web\nSERVICE_TAGS=a,b\\,c", "SERVICE_80_CHECK_HTTP=/health", "nginx:1.27", "bridge",
		"80/tcp=0.0.0.0|8080,443/tcp", "bridge=172.17.0.2,", 0)
	s := Build(c, o)
	want := registry.Instance{ID: "fuzz-node:fuzz:80", Name: "web", Address: "192.0.2.1", Port: 8080}
	if len(s.Instances) != 1 {
		t.Fatalf("instances %+v", s.Instances)
	}
	got := s.Instances[0]
	if got.ID != want.ID || got.Name != want.Name || got.Address != want.Address || got.Port != want.Port ||
		!slices.Equal(got.Tags, []string{"a", "b,c", "forced", "udp"}) || len(got.Checks) != 1 {
		t.Fatalf("instance %+v", got)
	}
}
