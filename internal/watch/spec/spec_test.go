package spec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/sdctl/sdctl/registry"
)

// ctrID is the full ID of the test container.
var ctrID = strings.Repeat("ab", 32)

type mod func(*container.InspectResponse)

// ctr is a running container named web-1, image registry:5000/team/app:1.2, on the default
// bridge (172.17.0.2), with no ports; mods add the rest.
func ctr(mods ...mod) container.InspectResponse {
	c := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:         ctrID,
			Name:       "/web-1",
			State:      &container.State{Status: "running", Running: true},
			HostConfig: &container.HostConfig{NetworkMode: "bridge"},
		},
		Config: &container.Config{
			Image:        "registry:5000/team/app:1.2",
			ExposedPorts: nat.PortSet{},
			Labels:       map[string]string{},
		},
		NetworkSettings: &container.NetworkSettings{
			NetworkSettingsBase: container.NetworkSettingsBase{Ports: nat.PortMap{}},
			Networks:            map[string]*network.EndpointSettings{"bridge": {IPAddress: "172.17.0.2"}},
		},
	}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func env(kv ...string) mod {
	return func(c *container.InspectResponse) { c.Config.Env = append(c.Config.Env, kv...) }
}

// labels sets labels given as "KEY=VALUE".
func labels(kv ...string) mod {
	return func(c *container.InspectResponse) {
		for _, s := range kv {
			k, v, _ := strings.Cut(s, "=")
			c.Config.Labels[k] = v
		}
	}
}

// expose exposes ports without publishing them.
func expose(ports ...string) mod {
	return func(c *container.InspectResponse) {
		for _, p := range ports {
			c.Config.ExposedPorts[nat.Port(p)] = struct{}{}
			if _, ok := c.NetworkSettings.Ports[nat.Port(p)]; !ok {
				c.NetworkSettings.Ports[nat.Port(p)] = nil
			}
		}
	}
}

// publish exposes port and adds a host binding "hostIP:hostPort".
func publish(port, hostIP, hostPort string) mod {
	return func(c *container.InspectResponse) {
		c.Config.ExposedPorts[nat.Port(port)] = struct{}{}
		c.NetworkSettings.Ports[nat.Port(port)] = append(c.NetworkSettings.Ports[nat.Port(port)],
			nat.PortBinding{HostIP: hostIP, HostPort: hostPort})
	}
}

func image(img string) mod {
	return func(c *container.InspectResponse) { c.Config.Image = img }
}

// netMode sets the network mode; host and container modes get no networks and no port map,
// as Docker reports them.
func netMode(mode string) mod {
	return func(c *container.InspectResponse) {
		c.HostConfig.NetworkMode = container.NetworkMode(mode)
		if mode == "host" || strings.HasPrefix(mode, "container:") {
			c.NetworkSettings.Networks = nil
			c.NetworkSettings.Ports = nat.PortMap{}
		}
	}
}

// networks replaces the attached networks: "name=ipv4" or "name=ipv4,ipv6".
func networks(nets ...string) mod {
	return func(c *container.InspectResponse) {
		c.NetworkSettings.Networks = map[string]*network.EndpointSettings{}
		for _, n := range nets {
			name, ips, _ := strings.Cut(n, "=")
			v4, v6, _ := strings.Cut(ips, ",")
			c.NetworkSettings.Networks[name] = &network.EndpointSettings{IPAddress: v4, GlobalIPv6Address: v6}
		}
	}
}

func health(status string) mod {
	return func(c *container.InspectResponse) { c.State.Health = &container.Health{Status: status} }
}

var baseOpts = Options{Node: "node1", DefaultIP: "192.0.2.10"}

// with returns baseOpts changed by f.
func with(f func(*Options)) Options {
	o := baseOpts
	f(&o)
	return o
}

// summary is "ID NAME HOST:PORT [tags]" for each instance.
func summary(insts []registry.Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, fmt.Sprintf("%s %s %s [%s]", in.ID, in.Name, registry.HostPort(in.Address, in.Port), strings.Join(in.Tags, " ")))
	}
	return out
}

func instByID(t *testing.T, s Spec, id string) registry.Instance {
	t.Helper()
	for _, in := range s.Instances {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("no instance %q in %v", id, summary(s.Instances))
	return registry.Instance{}
}

type testCase struct {
	name string
	c    container.InspectResponse
	o    *Options // nil: baseOpts
	// want lists the instances as summary prints them.
	want    []string
	ignored string
	// problems are "KEY|reason substring"; the list must be complete.
	problems []string
	// skipped are "PORT: reason substring"; the list must be complete.
	skipped []string
	check   func(t *testing.T, s Spec)
}

func runCases(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts
			if tc.o != nil {
				o = *tc.o
			}
			s := Build(tc.c, o)
			if got := summary(s.Instances); !slices.Equal(got, tc.want) {
				t.Errorf("instances\n got %q\nwant %q", got, tc.want)
			}
			if s.Ignored != tc.ignored {
				t.Errorf("Ignored = %q, want %q", s.Ignored, tc.ignored)
			}
			match(t, "problem", s.Problems, tc.problems, func(p Problem) (string, string) { return p.Key, p.Reason }, "|")
			match(t, "skipped port", s.Skipped, tc.skipped, func(p PortSkip) (string, string) { return p.Port, p.Reason }, ": ")
			for _, in := range s.Instances {
				if err := in.Validate(); err != nil {
					t.Errorf("instance %s does not validate: %v", in.ID, err)
				}
				if in.Meta[MetaSpec] != Hash(in) {
					t.Errorf("instance %s: %s = %q, Hash = %q", in.ID, MetaSpec, in.Meta[MetaSpec], Hash(in))
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
			if t.Failed() {
				t.Logf("problems: %q", s.Problems)
				t.Logf("skipped: %q", s.Skipped)
			}
		})
	}
}

// match checks that every expected "key<sep>substring" matches one distinct item and that
// nothing else is there.
func match[T any](t *testing.T, what string, got []T, want []string, kv func(T) (string, string), sep string) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		key, sub, _ := strings.Cut(w, sep)
		found := false
		for i, g := range got {
			k, r := kv(g)
			if !used[i] && k == key && strings.Contains(r, sub) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing %s %q", what, w)
		}
	}
	for i, g := range got {
		if !used[i] {
			k, r := kv(g)
			t.Errorf("unexpected %s %q%s%q", what, k, sep, r)
		}
	}
}

func optsPtr(f func(*Options)) *Options {
	o := with(f)
	return &o
}

func TestBuildNaming(t *testing.T) {
	runCases(t, []testCase{
		{
			name: "one published port: image base name, generated ID, default address",
			c:    ctr(publish("80/tcp", "0.0.0.0", "8080")),
			want: []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
		},
		{
			name: "several ports get the -port suffix",
			c:    ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443")),
			want: []string{"node1:web-1:443 app-443 192.0.2.10:8443 []", "node1:web-1:80 app-80 192.0.2.10:8080 []"},
		},
		{
			name: "generic SERVICE_NAME is suffixed, a per-port name is not",
			c: ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"),
				env("SERVICE_NAME=db", "SERVICE_443_NAME=secure")),
			want: []string{"node1:web-1:443 secure 192.0.2.10:8443 []", "node1:web-1:80 db-80 192.0.2.10:8080 []"},
		},
		{
			name: "single port with SERVICE_NAME",
			c:    ctr(publish("80/tcp", "", "8080"), env("SERVICE_NAME=db")),
			want: []string{"node1:web-1:80 db 192.0.2.10:8080 []"},
		},
		{
			name: "image digest is cut at @",
			c:    ctr(publish("80/tcp", "", "8080"), image("registry:5000/team/app@sha256:"+strings.Repeat("0", 64))),
			want: []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
		},
		{
			name: "image name and tag",
			c:    ctr(publish("80/tcp", "", "8080"), image("nginx:1.27-alpine")),
			want: []string{"node1:web-1:80 nginx 192.0.2.10:8080 []"},
		},
		{
			name: "image ID falls back to the compose service label",
			c: ctr(publish("80/tcp", "", "8080"), image("sha256:"+strings.Repeat("f", 64)),
				labels("com.docker.compose.service=api")),
			want: []string{"node1:web-1:80 api 192.0.2.10:8080 []"},
		},
		{
			name:     "image ID without compose label ignores the container",
			c:        ctr(publish("80/tcp", "", "8080"), image("sha256:"+strings.Repeat("f", 64))),
			ignored:  `the image is referenced by ID ("sha256:` + strings.Repeat("f", 64) + `") and there is no com.docker.compose.service label; set SERVICE_NAME`,
			problems: []string{"Config.Image|referenced by ID"},
		},
		{
			name:     "bare 64-hex image ID",
			c:        ctr(publish("80/tcp", "", "8080"), image(strings.Repeat("0a", 32))),
			ignored:  `the image is referenced by ID ("` + strings.Repeat("0a", 32) + `") and there is no com.docker.compose.service label; set SERVICE_NAME`,
			problems: []string{"Config.Image|set SERVICE_NAME"},
		},
		{
			name: "image ID with SERVICE_NAME is fine",
			c:    ctr(publish("80/tcp", "", "8080"), image("sha256:"+strings.Repeat("f", 64)), env("SERVICE_NAME=api")),
			want: []string{"node1:web-1:80 api 192.0.2.10:8080 []"},
		},
		{
			name: "image ID: ports with their own name register, the others are skipped",
			c: ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"),
				image("sha256:"+strings.Repeat("f", 64)), env("SERVICE_443_NAME=secure")),
			want:     []string{"node1:web-1:443 secure 192.0.2.10:8443 []"},
			problems: []string{"Config.Image|referenced by ID"},
			skipped:  []string{"80/tcp: no service name"},
		},
		{
			name: "invalid name skips that port only",
			c: ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"),
				env("SERVICE_80_NAME=bad name")),
			want:     []string{"node1:web-1:443 app-443 192.0.2.10:8443 []"},
			problems: []string{`SERVICE_80_NAME|port 80/tcp: service name "bad name": character ' ' is not allowed`},
			skipped:  []string{"80/tcp: invalid service name"},
		},
		{
			name: "label beats env",
			c:    ctr(publish("80/tcp", "", "8080"), env("SERVICE_NAME=fromenv"), labels("SERVICE_NAME=fromlabel")),
			want: []string{"node1:web-1:80 fromlabel 192.0.2.10:8080 []"},
		},
		{
			name: "per-port env beats generic label",
			c: ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"),
				env("SERVICE_80_NAME=portenv"), labels("SERVICE_NAME=generic")),
			want: []string{"node1:web-1:443 generic-443 192.0.2.10:8443 []", "node1:web-1:80 portenv 192.0.2.10:8080 []"},
		},
		{
			name: "per-port label beats per-port env",
			c:    ctr(publish("80/tcp", "", "8080"), env("SERVICE_80_NAME=env"), labels("SERVICE_80_NAME=label")),
			want: []string{"node1:web-1:80 label 192.0.2.10:8080 []"},
		},
		{
			name:     "empty values are absent; empty labels are reported",
			c:        ctr(publish("80/tcp", "", "8080"), env("SERVICE_NAME=env", "SERVICE_TAGS="), labels("SERVICE_NAME=")),
			want:     []string{"node1:web-1:80 env 192.0.2.10:8080 []"},
			problems: []string{"SERVICE_NAME|empty value ignored"},
		},
		{
			name: "keys are case-insensitive after the exact SERVICE_ prefix",
			c:    ctr(publish("80/tcp", "", "8080"), env("SERVICE_Name=mixed", "service_tags=nope", "Service_Region=nope")),
			want: []string{"node1:web-1:80 mixed 192.0.2.10:8080 []"},
			check: func(t *testing.T, s Spec) {
				if m := s.Instances[0].Meta; len(m) != 3 {
					t.Errorf("meta = %v, want only the marks", m)
				}
			},
		},
		{
			name:     "per-port key for a port the container lacks",
			c:        ctr(publish("80/tcp", "", "8080"), env("SERVICE_8080_NAME=x"), labels("SERVICE_9090_TAGS=y")),
			want:     []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
			problems: []string{"SERVICE_8080_NAME|port 8080 is not exposed", "SERVICE_9090_TAGS|port 9090 is not exposed"},
		},
		{
			name: "per-port keys apply to tcp and udp",
			c: ctr(publish("53/tcp", "", "53"), publish("53/udp", "", "53"),
				env("SERVICE_53_NAME=dns")),
			want: []string{"node1:web-1:53 dns 192.0.2.10:53 []", "node1:web-1:53:udp dns 192.0.2.10:53 [udp]"},
		},
	})
}

func TestBuildIgnoreAndExplicit(t *testing.T) {
	runCases(t, []testCase{
		{
			name:    "SERVICE_IGNORE, any value",
			c:       ctr(publish("80/tcp", "", "8080"), env("SERVICE_IGNORE=false")),
			ignored: "SERVICE_IGNORE is set",
		},
		{
			name:    "SERVICE_IGNORE as a label",
			c:       ctr(publish("80/tcp", "", "8080"), labels("SERVICE_IGNORE=1")),
			ignored: "SERVICE_IGNORE is set",
		},
		{
			name: "per-port ignore; the ignored port still counts for the suffix",
			c: ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"),
				env("SERVICE_443_IGNORE=yes")),
			want:    []string{"node1:web-1:80 app-80 192.0.2.10:8080 []"},
			skipped: []string{"443/tcp: SERVICE_443_IGNORE is set"},
		},
		{
			name:    "explicit: unnamed ports skipped",
			c:       ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"), env("SERVICE_443_NAME=secure")),
			o:       optsPtr(func(o *Options) { o.Explicit = true }),
			want:    []string{"node1:web-1:443 secure 192.0.2.10:8443 []"},
			skipped: []string{"80/tcp: no name"},
		},
		{
			name: "explicit: a generic name names every port",
			c:    ctr(publish("80/tcp", "", "8080"), publish("443/tcp", "", "8443"), env("SERVICE_NAME=db")),
			o:    optsPtr(func(o *Options) { o.Explicit = true }),
			want: []string{"node1:web-1:443 db-443 192.0.2.10:8443 []", "node1:web-1:80 db-80 192.0.2.10:8080 []"},
		},
		{
			name:    "explicit with an image ID skips rather than ignores",
			c:       ctr(publish("80/tcp", "", "8080"), image("sha256:"+strings.Repeat("f", 64))),
			o:       optsPtr(func(o *Options) { o.Explicit = true }),
			skipped: []string{"80/tcp: no name"},
		},
		{
			name:    "not running",
			c:       ctr(publish("80/tcp", "", "8080"), func(c *container.InspectResponse) { c.State.Running = false }),
			ignored: "not running",
		},
		{
			name:    "no state",
			c:       ctr(publish("80/tcp", "", "8080"), func(c *container.InspectResponse) { c.State = nil }),
			ignored: "not running",
		},
		{
			name:    "no config",
			c:       ctr(func(c *container.InspectResponse) { c.Config = nil }),
			ignored: "incomplete inspect data",
		},
		{
			name:    "no base",
			c:       container.InspectResponse{},
			ignored: "incomplete inspect data",
		},
	})
}

func TestBuildPorts(t *testing.T) {
	runCases(t, []testCase{
		{
			name:    "unpublished port skipped",
			c:       ctr(publish("80/tcp", "", "8080"), expose("9000/tcp")),
			want:    []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
			skipped: []string{"9000/tcp: not published"},
		},
		{
			name:    "nothing published",
			c:       ctr(expose("9000/tcp", "9001/tcp")),
			ignored: "no published ports",
			skipped: []string{"9000/tcp: not published", "9001/tcp: not published"},
		},
		{
			name:    "no ports at all",
			c:       ctr(),
			ignored: "no published ports",
		},
		{
			name:    "internal, no ports",
			c:       ctr(),
			o:       optsPtr(func(o *Options) { o.Internal = true }),
			ignored: "no exposed ports",
		},
		{
			name: "internal: container IP and exposed port; unpublished ports eligible",
			c:    ctr(publish("80/tcp", "", "8080"), expose("9000/tcp")),
			o:    optsPtr(func(o *Options) { o.Internal = true }),
			want: []string{"node1:web-1:80 app-80 172.17.0.2:80 []", "node1:web-1:9000 app-9000 172.17.0.2:9000 []"},
		},
		{
			name: "host network: exposed ports on the same number, default address",
			c:    ctr(netMode("host"), func(c *container.InspectResponse) { c.Config.ExposedPorts["8500/tcp"] = struct{}{} }),
			want: []string{"node1:web-1:8500 app 192.0.2.10:8500 []"},
		},
		{
			name: "host network: --ip wins",
			c:    ctr(netMode("host"), func(c *container.InspectResponse) { c.Config.ExposedPorts["8500/tcp"] = struct{}{} }),
			o:    optsPtr(func(o *Options) { o.HostIP = "198.51.100.7" }),
			want: []string{"node1:web-1:8500 app 198.51.100.7:8500 []"},
		},
		{
			name: "host network in internal mode uses the host address",
			c:    ctr(netMode("host"), func(c *container.InspectResponse) { c.Config.ExposedPorts["8500/tcp"] = struct{}{} }),
			o:    optsPtr(func(o *Options) { o.Internal = true }),
			want: []string{"node1:web-1:8500 app 192.0.2.10:8500 []"},
		},
		{
			name: "binding with a specific host IP",
			c:    ctr(publish("80/tcp", "10.0.0.5", "8080")),
			want: []string{"node1:web-1:80 app 10.0.0.5:8080 []"},
		},
		{
			name: "--ip beats the binding's IP",
			c:    ctr(publish("80/tcp", "10.0.0.5", "8080")),
			o:    optsPtr(func(o *Options) { o.HostIP = "198.51.100.7" }),
			want: []string{"node1:web-1:80 app 198.51.100.7:8080 []"},
		},
		{
			name: "IPv4 binding preferred over an earlier IPv6 one",
			c:    ctr(publish("80/tcp", "::1", "9000"), publish("80/tcp", "127.0.0.1", "9001")),
			want: []string{"node1:web-1:80 app 127.0.0.1:9001 []"},
		},
		{
			name: "dual-stack bindings to every interface",
			c:    ctr(publish("80/tcp", "::", "8080"), publish("80/tcp", "0.0.0.0", "8080")),
			want: []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
		},
		{
			name: "only IPv6 bindings: the first one",
			c:    ctr(publish("80/tcp", "2001:db8::5", "8080"), publish("80/tcp", "2001:db8::6", "8081")),
			want: []string{"node1:web-1:80 app [2001:db8::5]:8080 []"},
		},
		{
			name: "udp: ID suffix and tag",
			c:    ctr(publish("53/udp", "", "5353")),
			want: []string{"node1:web-1:53:udp app 192.0.2.10:5353 [udp]"},
		},
		{
			name: "tcp and udp on the same number",
			c:    ctr(publish("53/tcp", "", "53"), publish("53/udp", "", "53")),
			want: []string{"node1:web-1:53 app-53 192.0.2.10:53 []", "node1:web-1:53:udp app-53 192.0.2.10:53 [udp]"},
		},
		{
			name:    "sctp ports are not registered",
			c:       ctr(publish("80/tcp", "", "8080"), publish("9999/sctp", "", "9999"), env("SERVICE_9999_NAME=x")),
			want:    []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
			skipped: []string{`9999/sctp: protocol "sctp" is not registered`},
		},
		{
			name: "published port with no known host address",
			c:    ctr(publish("80/tcp", "0.0.0.0", "8080")),
			o:    optsPtr(func(o *Options) { o.DefaultIP = "" }),
			problems: []string{
				"--ip|port 80/tcp is bound to every interface and no host address is known",
			},
			skipped: []string{"80/tcp: no address"},
		},
		{
			name:     "invalid --ip",
			c:        ctr(publish("80/tcp", "", "8080")),
			o:        optsPtr(func(o *Options) { o.HostIP = "300.1.1.1" }),
			problems: []string{`--ip|port 80/tcp: "300.1.1.1" is not a valid IPv4 address`},
			skipped:  []string{"80/tcp: invalid address"},
		},
		{
			name:     "shared network namespace in internal mode",
			c:        ctr(netMode("container:abc"), func(c *container.InspectResponse) { c.Config.ExposedPorts["80/tcp"] = struct{}{} }),
			o:        optsPtr(func(o *Options) { o.Internal = true }),
			ignored:  `shares another container's network ("container:abc"); not supported with --internal`,
			problems: []string{"HostConfig.NetworkMode|shares another container's network"},
		},
		{
			name:    "shared network namespace in published mode: nothing is published",
			c:       ctr(netMode("container:abc"), func(c *container.InspectResponse) { c.Config.ExposedPorts["80/tcp"] = struct{}{} }),
			ignored: "no published ports",
			skipped: []string{"80/tcp: not published"},
		},
	})
}

func TestBuildNetworks(t *testing.T) {
	internal := optsPtr(func(o *Options) { o.Internal = true })
	runCases(t, []testCase{
		{
			name: "user-defined network mode",
			c:    ctr(expose("80/tcp"), netMode("mynet"), networks("mynet=10.1.0.5", "other=10.2.0.5")),
			o:    internal,
			want: []string{"node1:web-1:80 app 10.1.0.5:80 []"},
		},
		{
			name: "SERVICE_NETWORK",
			c:    ctr(expose("80/tcp"), netMode("mynet"), networks("mynet=10.1.0.5", "other=10.2.0.5"), env("SERVICE_NETWORK=other")),
			o:    internal,
			want: []string{"node1:web-1:80 app 10.2.0.5:80 []"},
		},
		{
			name: "per-port SERVICE_<n>_NETWORK",
			c: ctr(expose("80/tcp", "81/tcp"), netMode("mynet"), networks("mynet=10.1.0.5", "other=10.2.0.5"),
				env("SERVICE_81_NETWORK=other")),
			o:    internal,
			want: []string{"node1:web-1:80 app-80 10.1.0.5:80 []", "node1:web-1:81 app-81 10.2.0.5:81 []"},
		},
		{
			name: "--network option",
			c:    ctr(expose("80/tcp"), netMode("mynet"), networks("mynet=10.1.0.5", "other=10.2.0.5")),
			o:    optsPtr(func(o *Options) { o.Internal, o.Network = true, "other" }),
			want: []string{"node1:web-1:80 app 10.2.0.5:80 []"},
		},
		{
			name: "SERVICE_NETWORK beats --network",
			c:    ctr(expose("80/tcp"), networks("a=10.1.0.5", "b=10.2.0.5"), labels("SERVICE_NETWORK=a")),
			o:    optsPtr(func(o *Options) { o.Internal, o.Network = true, "b" }),
			want: []string{"node1:web-1:80 app 10.1.0.5:80 []"},
		},
		{
			name:     "named network not attached",
			c:        ctr(expose("80/tcp"), env("SERVICE_NETWORK=nope")),
			o:        internal,
			problems: []string{`SERVICE_NETWORK|the container is not attached to network "nope"`},
			skipped:  []string{`80/tcp: the container is not attached to network "nope"`},
		},
		{
			name:     "--network not attached",
			c:        ctr(expose("80/tcp")),
			o:        optsPtr(func(o *Options) { o.Internal, o.Network = true, "backend" }),
			problems: []string{`--network|the container is not attached to network "backend"`},
			skipped:  []string{`80/tcp: the container is not attached to network "backend"`},
		},
		{
			name: "default bridge mode, legacy IPAddress field",
			c: ctr(expose("80/tcp"), netMode("default"), networks(), func(c *container.InspectResponse) {
				c.NetworkSettings.IPAddress = "172.17.0.9"
			}),
			o:    internal,
			want: []string{"node1:web-1:80 app 172.17.0.9:80 []"},
		},
		{
			name: "bridge mode with another network connected uses the bridge",
			c:    ctr(expose("80/tcp"), networks("bridge=172.17.0.3", "app_default=172.20.0.3")),
			o:    internal,
			want: []string{"node1:web-1:80 app 172.17.0.3:80 []"},
		},
		{
			name: "several networks, none chosen: the alphabetically first",
			c:    ctr(expose("80/tcp"), netMode("gone"), networks("zeta=10.9.0.1", "alpha=10.1.0.1", "mid=10.5.0.1")),
			o:    internal,
			want: []string{"node1:web-1:80 app 10.1.0.1:80 []"},
		},
		{
			name: "IPv6-only network",
			c:    ctr(expose("80/tcp"), netMode("v6net"), networks("v6net=,2001:db8::2")),
			o:    internal,
			want: []string{"node1:web-1:80 app [2001:db8::2]:80 []"},
		},
		{
			name: "dual-stack network prefers IPv4",
			c:    ctr(expose("80/tcp"), netMode("ds"), networks("ds=10.3.0.2,2001:db8::2")),
			o:    internal,
			want: []string{"node1:web-1:80 app 10.3.0.2:80 []"},
		},
		{
			name:     "no address on any network",
			c:        ctr(expose("80/tcp"), netMode("none"), networks()),
			o:        internal,
			problems: []string{"NetworkSettings.Networks|no IP address on any network"},
			skipped:  []string{"80/tcp: the container has no IP address on any network"},
		},
		{
			name: "published mode on a user network keeps the host address",
			c:    ctr(publish("80/tcp", "", "8080"), netMode("mynet"), networks("mynet=10.1.0.5")),
			want: []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
		},
		{
			name: "ip from label, published mode",
			c:    ctr(publish("80/tcp", "", "8080"), labels("ip=10.9.9.9/24")),
			o:    optsPtr(func(o *Options) { o.IPFromLabel = "ip" }),
			want: []string{"node1:web-1:80 app 10.9.9.9:8080 []"},
		},
		{
			name: "ip from label, internal mode, even with an unattached network named",
			c:    ctr(expose("80/tcp"), labels("ip=10.9.9.9", "SERVICE_NETWORK=nope")),
			o:    optsPtr(func(o *Options) { o.IPFromLabel, o.Internal = "ip", true }),
			want: []string{"node1:web-1:80 app 10.9.9.9:80 []"},
		},
		{
			name:     "ip label missing keeps the normal address",
			c:        ctr(publish("80/tcp", "", "8080")),
			o:        optsPtr(func(o *Options) { o.IPFromLabel = "ip" }),
			want:     []string{"node1:web-1:80 app 192.0.2.10:8080 []"},
			problems: []string{"ip|label is not set"},
		},
		{
			name:     "ip label invalid",
			c:        ctr(publish("80/tcp", "", "8080"), labels("ip=not an address")),
			o:        optsPtr(func(o *Options) { o.IPFromLabel = "ip" }),
			problems: []string{`ip|port 80/tcp: host name "not an address"`},
			skipped:  []string{"80/tcp: invalid address"},
		},
	})
}

func TestBuildIDs(t *testing.T) {
	runCases(t, []testCase{
		{
			name: "SERVICE_ID on one port is used as is",
			c:    ctr(publish("53/udp", "", "53"), env("SERVICE_ID=dns-1")),
			want: []string{"dns-1 app 192.0.2.10:53 [udp]"},
		},
		{
			name: "generic SERVICE_ID on several ports gets the port (and udp)",
			c:    ctr(publish("53/udp", "", "53"), publish("53/tcp", "", "53"), publish("80/tcp", "", "80"), env("SERVICE_ID=x")),
			want: []string{"x:53 app-53 192.0.2.10:53 []", "x:53:udp app-53 192.0.2.10:53 [udp]", "x:80 app-80 192.0.2.10:80 []"},
		},
		{
			name: "per-port ID is used as is",
			c:    ctr(publish("80/tcp", "", "80"), publish("443/tcp", "", "443"), env("SERVICE_ID=gen", "SERVICE_443_ID=tls")),
			want: []string{"gen:80 app-80 192.0.2.10:80 []", "tls app-443 192.0.2.10:443 []"},
		},
		{
			name: "per-port ID on tcp and udp of one number keeps them apart",
			c:    ctr(publish("53/tcp", "", "53"), publish("53/udp", "", "53"), env("SERVICE_53_ID=dns")),
			want: []string{"dns app-53 192.0.2.10:53 []", "dns:udp app-53 192.0.2.10:53 [udp]"},
		},
		{
			name:     "the same per-port ID on two ports",
			c:        ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"), env("SERVICE_80_ID=same", "SERVICE_81_ID=same")),
			want:     []string{"same app-80 192.0.2.10:80 []"},
			problems: []string{`|port 81/tcp: ID "same" is already used by port 80/tcp`},
			skipped:  []string{"81/tcp: duplicate ID"},
		},
		{
			name:     "invalid ID",
			c:        ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"), env("SERVICE_80_ID=a/b")),
			want:     []string{"node1:web-1:81 app-81 192.0.2.10:81 []"},
			problems: []string{`SERVICE_80_ID|port 80/tcp: instance ID "a/b": character '/' is not allowed`},
			skipped:  []string{"80/tcp: invalid ID"},
		},
		{
			name:     "ID not UTF-8",
			c:        ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"), env("SERVICE_80_ID=a\xffb")),
			want:     []string{"node1:web-1:81 app-81 192.0.2.10:81 []"},
			problems: []string{`SERVICE_80_ID|port 80/tcp: instance ID is not valid UTF-8: "a?b"; port skipped`},
			skipped:  []string{"80/tcp: invalid ID"},
		},
		{
			name: "container without a name uses its short ID",
			c:    ctr(publish("80/tcp", "", "80"), func(c *container.InspectResponse) { c.Name = "" }),
			want: []string{"node1:abababababab:80 app 192.0.2.10:80 []"},
		},
		{
			name: "instances are sorted by ID",
			c: ctr(publish("9000/tcp", "", "9000"), publish("10/tcp", "", "10"), publish("200/tcp", "", "200"),
				env("SERVICE_9000_ID=a", "SERVICE_10_ID=c", "SERVICE_200_ID=b")),
			want: []string{"a app-9000 192.0.2.10:9000 []", "b app-200 192.0.2.10:200 []", "c app-10 192.0.2.10:10 []"},
		},
	})
}

func TestBuildTagsMetaWeight(t *testing.T) {
	runCases(t, []testCase{
		{
			name: "tags keep their order; escaped commas; empty items and duplicates dropped",
			c:    ctr(publish("80/tcp", "", "80"), env(`SERVICE_TAGS=zeta, alpha,,a\,b,zeta`)),
			want: []string{"node1:web-1:80 app 192.0.2.10:80 [zeta alpha a,b]"},
		},
		{
			name: "per-port tags replace generic ones; forced tags and udp follow",
			c: ctr(publish("80/tcp", "", "80"), publish("53/udp", "", "53"),
				env("SERVICE_TAGS=gen", "SERVICE_53_TAGS=dns,prod")),
			o:    optsPtr(func(o *Options) { o.ForceTags = []string{"prod", "dc1"} }),
			want: []string{"node1:web-1:53:udp app-53 192.0.2.10:53 [dns prod dc1 udp]", "node1:web-1:80 app-80 192.0.2.10:80 [gen prod dc1]"},
		},
		{
			name:     "invalid tag dropped, the rest kept",
			c:        ctr(publish("80/tcp", "", "80"), env("SERVICE_TAGS=ok,bad tag")),
			o:        optsPtr(func(o *Options) { o.ForceTags = []string{"also bad"} }),
			want:     []string{"node1:web-1:80 app 192.0.2.10:80 [ok]"},
			problems: []string{`SERVICE_TAGS|tag "bad tag"`, `--tags|tag "also bad"`},
		},
		{
			name:     "tag and metadata value not UTF-8 dropped, the rest kept",
			c:        ctr(publish("80/tcp", "", "80"), env("SERVICE_TAGS=ok,b\xe9d", "SERVICE_REGION=\xffeu", "SERVICE_ZONE=a")),
			want:     []string{"node1:web-1:80 app 192.0.2.10:80 [ok]"},
			problems: []string{`SERVICE_TAGS|tag is not valid UTF-8: "b?d"; tag dropped`, `SERVICE_REGION|metadata value of "region" is not valid UTF-8: "?eu"; ignored`},
			check: func(t *testing.T, s Spec) {
				if m := s.Instances[0].Meta; m["zone"] != "a" || m["region"] != "" {
					t.Errorf("meta = %v", m)
				}
			},
		},
		{
			name: "other keys become lower-cased metadata; per-port beats generic",
			c: ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"),
				env("SERVICE_REGION=eu", "SERVICE_81_REGION=us", "SERVICE_Team_Name=core", "SERVICE_CHECK_TCP=1", "SERVICE_81_CHECK_INTERVAL=5s")),
			want: []string{"node1:web-1:80 app-80 192.0.2.10:80 []", "node1:web-1:81 app-81 192.0.2.10:81 []"},
			check: func(t *testing.T, s Spec) {
				for id, want := range map[string]map[string]string{
					"node1:web-1:80": {"region": "eu", "team_name": "core"},
					"node1:web-1:81": {"region": "us", "team_name": "core"},
				} {
					in := instByID(t, s, id)
					got := map[string]string{}
					for k, v := range in.Meta {
						if !strings.HasPrefix(k, "sdctl-") {
							got[k] = v
						}
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s meta = %v, want %v", id, got, want)
					}
					if in.Meta[MetaNode] != "node1" || in.Meta[MetaContainer] != ctrID || len(in.Meta[MetaSpec]) != 16 {
						t.Errorf("%s marks = %v", id, in.Meta)
					}
				}
			},
		},
		{
			name: "bad metadata keys and reserved keys",
			c: ctr(publish("80/tcp", "", "80"),
				env("SERVICE_MY.KEY=x", "SERVICE_SDCTL-NODE=evil", "SERVICE_sdctl-spec=evil", "SERVICE_SDCTL-OTHER=x", "SERVICE_OK=1", "SERVICE_=x")),
			want: []string{"node1:web-1:80 app 192.0.2.10:80 []"},
			problems: []string{
				"SERVICE_MY.KEY|character '.' is not allowed",
				"SERVICE_SDCTL-NODE|reserved",
				"SERVICE_sdctl-spec|reserved",
				"SERVICE_SDCTL-OTHER|reserved",
				"SERVICE_|metadata key is empty",
			},
			check: func(t *testing.T, s Spec) {
				m := s.Instances[0].Meta
				if m["ok"] != "1" || m[MetaNode] != "node1" || len(m) != 4 {
					t.Errorf("meta = %v", m)
				}
			},
		},
		{
			name: "too many metadata keys",
			c: ctr(publish("80/tcp", "", "80"), func(c *container.InspectResponse) {
				for i := range 63 {
					c.Config.Env = append(c.Config.Env, fmt.Sprintf("SERVICE_K%02d=v", i))
				}
			}),
			want:     []string{"node1:web-1:80 app 192.0.2.10:80 []"},
			problems: []string{"SERVICE_K60|too many metadata keys", "SERVICE_K61|too many metadata keys", "SERVICE_K62|too many metadata keys"},
			check: func(t *testing.T, s Spec) {
				// One pair stays free for the watcher's MetaScope.
				if n := len(s.Instances[0].Meta); n != registry.MaxMetaPairs-1 {
					t.Errorf("%d meta pairs", n)
				}
			},
		},
		{
			name: "weight",
			c:    ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"), env("SERVICE_WEIGHT=5", "SERVICE_81_WEIGHT=0")),
			want: []string{"node1:web-1:80 app-80 192.0.2.10:80 []", "node1:web-1:81 app-81 192.0.2.10:81 []"},
			problems: []string{
				`SERVICE_81_WEIGHT|weight "0" is not a positive integer; ignored`,
			},
			check: func(t *testing.T, s Spec) {
				if w := instByID(t, s, "node1:web-1:80").Weight; w != 5 {
					t.Errorf("weight 80 = %d", w)
				}
				if w := instByID(t, s, "node1:web-1:81").Weight; w != 0 {
					t.Errorf("weight 81 = %d", w)
				}
			},
		},
		{
			name:     "TTL option and bad weight",
			c:        ctr(publish("80/tcp", "", "80"), labels("SERVICE_WEIGHT=heavy")),
			o:        optsPtr(func(o *Options) { o.TTL = 30 * time.Second }),
			want:     []string{"node1:web-1:80 app 192.0.2.10:80 []"},
			problems: []string{`SERVICE_WEIGHT|weight "heavy"`},
			check: func(t *testing.T, s Spec) {
				if in := s.Instances[0]; in.TTL != 30*time.Second || in.Weight != 0 {
					t.Errorf("TTL %s weight %d", in.TTL, in.Weight)
				}
			},
		},
	})
}

func TestBuildChecks(t *testing.T) {
	pub := publish("80/tcp", "", "8080")
	one := []string{"node1:web-1:80 app 192.0.2.10:8080 []"}
	checks := func(want ...registry.Check) func(t *testing.T, s Spec) {
		return func(t *testing.T, s Spec) {
			t.Helper()
			if got := s.Instances[0].Checks; !reflect.DeepEqual(got, want) {
				t.Errorf("checks\n got %+v\nwant %+v", got, want)
			}
		}
	}
	const iv = 10 * time.Second
	runCases(t, []testCase{
		{
			name:  "http",
			c:     ctr(pub, env("SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_HTTP_METHOD=head", "SERVICE_CHECK_TIMEOUT=5", "SERVICE_CHECK_INTERVAL=15s")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckHTTP, Target: "http://192.0.2.10:8080/health", Method: "HEAD", Interval: 15 * time.Second, Timeout: 5 * time.Second}),
		},
		{
			name:  "http path without a slash",
			c:     ctr(pub, env("SERVICE_CHECK_HTTP=health?full=1")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckHTTP, Target: "http://192.0.2.10:8080/health?full=1", Interval: iv}),
		},
		{
			name: "https honours skip-verify and its own method",
			c: ctr(pub, env("SERVICE_CHECK_HTTPS=/", "SERVICE_CHECK_HTTPS_METHOD=POST", "SERVICE_CHECK_HTTP_METHOD=PUT",
				"SERVICE_CHECK_TLS_SKIP_VERIFY=true", "SERVICE_CHECK_INITIAL_STATUS=Passing", "SERVICE_CHECK_DEREGISTER_AFTER=1m")),
			want: one,
			check: checks(registry.Check{Kind: registry.CheckHTTP, Target: "https://192.0.2.10:8080/", Method: "POST", Interval: iv,
				TLSSkipVerify: true, InitialStatus: registry.HealthPassing, DeregisterAfter: time.Minute}),
		},
		{
			name:  "script with substitutions",
			c:     ctr(pub, env("SERVICE_CHECK_SCRIPT=check.sh $SERVICE_IP:$SERVICE_PORT", "SERVICE_CHECK_TIMEOUT=2s")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckScript, Target: "check.sh 192.0.2.10:8080", Interval: iv, Timeout: 2 * time.Second}),
		},
		{
			name: "ttl is the instance's TTL, not a check",
			c:    ctr(pub, env("SERVICE_CHECK_TTL=45s")),
			o:    optsPtr(func(o *Options) { o.TTL = time.Minute }),
			want: one,
			check: func(t *testing.T, s Spec) {
				if in := s.Instances[0]; in.TTL != 45*time.Second || len(in.Checks) != 0 {
					t.Errorf("TTL %s, checks %v", in.TTL, in.Checks)
				}
			},
		},
		{
			name:     "bad ttl",
			c:        ctr(pub, env("SERVICE_CHECK_TTL=0")),
			o:        optsPtr(func(o *Options) { o.TTL = time.Minute }),
			want:     one,
			problems: []string{`SERVICE_CHECK_TTL|TTL "0": must be positive; ignored`},
			check: func(t *testing.T, s Spec) {
				if in := s.Instances[0]; in.TTL != time.Minute {
					t.Errorf("TTL %s", in.TTL)
				}
			},
		},
		{
			name:  "tcp",
			c:     ctr(pub, env("SERVICE_CHECK_TCP=true")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckTCP, Target: "192.0.2.10:8080", Interval: iv}),
		},
		{
			name:  "grpc",
			c:     ctr(pub, labels("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_INTERVAL=3")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckGRPC, Target: "192.0.2.10:8080", Interval: 3 * time.Second}),
		},
		{
			name:  "grpc with TLS",
			c:     ctr(pub, env("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=true")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckGRPC, Target: "192.0.2.10:8080", Interval: iv, GRPCUseTLS: true}),
		},
		{
			name:  "grpc with TLS, any certificate",
			c:     ctr(pub, env("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=true", "SERVICE_CHECK_TLS_SKIP_VERIFY=true")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckGRPC, Target: "192.0.2.10:8080", Interval: iv, GRPCUseTLS: true, TLSSkipVerify: true}),
		},
		{
			name:  "grpc without TLS ignores skip-verify",
			c:     ctr(pub, env("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_TLS_SKIP_VERIFY=true")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckGRPC, Target: "192.0.2.10:8080", Interval: iv}),
		},
		{
			name:  "grpc with TLS off",
			c:     ctr(pub, env("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=false")),
			want:  one,
			check: checks(registry.Check{Kind: registry.CheckGRPC, Target: "192.0.2.10:8080", Interval: iv}),
		},
		{
			name:     "grpc with TLS neither true nor false",
			c:        ctr(pub, env("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=maybe")),
			want:     one,
			problems: []string{"SERVICE_CHECK_GRPC_USE_TLS|not true or false"},
			check:    checks(),
		},
		{
			name:     "legacy CHECK_CMD",
			c:        ctr(pub, env("SERVICE_CHECK_CMD=/bin/true")),
			want:     one,
			problems: []string{"SERVICE_CHECK_CMD|not supported (use SERVICE_CHECK_SCRIPT)"},
			check:    checks(),
		},
		{
			name:     "precedence: http beats tcp and ttl",
			c:        ctr(pub, env("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_HTTP=/h", "SERVICE_CHECK_TTL=5s")),
			want:     one,
			problems: []string{"SERVICE_CHECK_TCP|SERVICE_CHECK_HTTP takes precedence", "SERVICE_CHECK_TTL|SERVICE_CHECK_HTTP takes precedence"},
			check:    checks(registry.Check{Kind: registry.CheckHTTP, Target: "http://192.0.2.10:8080/h", Interval: iv}),
		},
		{
			name:     "unparsable interval drops the check, the port registers",
			c:        ctr(pub, env("SERVICE_CHECK_HTTP=/h", "SERVICE_CHECK_INTERVAL=abc")),
			want:     one,
			problems: []string{`SERVICE_CHECK_INTERVAL|"abc": not a duration`},
			check:    checks(),
		},
		{
			name:     "negative timeout",
			c:        ctr(pub, env("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_TIMEOUT=-5s")),
			want:     one,
			problems: []string{`SERVICE_CHECK_TIMEOUT|negative duration; check dropped`},
			check:    checks(),
		},
		{
			name:     "bad initial status",
			c:        ctr(pub, env("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_INITIAL_STATUS=ok")),
			want:     one,
			problems: []string{`SERVICE_CHECK_INITIAL_STATUS|initial status "ok" is not passing, warning or critical`},
			check:    checks(),
		},
		{
			name:     "bad http method",
			c:        ctr(pub, env("SERVICE_CHECK_HTTP=/", "SERVICE_CHECK_HTTP_METHOD=GET /x")),
			want:     one,
			problems: []string{`SERVICE_CHECK_HTTP_METHOD|method "GET /x" is not an HTTP method`},
			check:    checks(),
		},
		{
			name:     "bad http path",
			c:        ctr(pub, env("SERVICE_CHECK_HTTP=/a\x7fb")),
			want:     one,
			problems: []string{`SERVICE_CHECK_HTTP|does not make a valid URL`},
			check:    checks(),
		},
		{
			name:     "http path not UTF-8",
			c:        ctr(pub, env("SERVICE_CHECK_HTTP=/h\xff")),
			want:     one,
			problems: []string{`SERVICE_CHECK_HTTP|http check target is not valid UTF-8: "http://192.0.2.10:8080/h?"; check dropped`},
			check:    checks(),
		},
		{
			name:     "script not UTF-8",
			c:        ctr(pub, env("SERVICE_CHECK_SCRIPT=check \xff $SERVICE_PORT")),
			want:     one,
			problems: []string{`SERVICE_CHECK_SCRIPT|script check target is not valid UTF-8: "check ? 8080"; check dropped`},
			check:    checks(),
		},
		{
			name:     "unknown check setting",
			c:        ctr(pub, env("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_INTERVALL=5s")),
			want:     one,
			problems: []string{"SERVICE_CHECK_INTERVALL|unknown check setting"},
			check:    checks(registry.Check{Kind: registry.CheckTCP, Target: "192.0.2.10:8080", Interval: iv}),
		},
		{
			name: "per-port check keys; generic problems reported once",
			c: ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"),
				env("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_TIMEOUT=x", "SERVICE_81_CHECK_TIMEOUT=1s")),
			want:     []string{"node1:web-1:80 app-80 192.0.2.10:80 []", "node1:web-1:81 app-81 192.0.2.10:81 []"},
			problems: []string{`SERVICE_CHECK_TIMEOUT|"x": not a duration`},
			check: func(t *testing.T, s Spec) {
				if c := instByID(t, s, "node1:web-1:80").Checks; len(c) != 0 {
					t.Errorf("80 checks %v", c)
				}
				want := []registry.Check{{Kind: registry.CheckTCP, Target: "192.0.2.10:81", Interval: iv, Timeout: time.Second}}
				if c := instByID(t, s, "node1:web-1:81").Checks; !reflect.DeepEqual(c, want) {
					t.Errorf("81 checks %v", c)
				}
			},
		},
		{
			name:  "checks target the internal IPv6 address",
			c:     ctr(expose("80/tcp"), netMode("v6"), networks("v6=,2001:db8::2"), env("SERVICE_CHECK_HTTP=/h")),
			o:     optsPtr(func(o *Options) { o.Internal = true }),
			want:  []string{"node1:web-1:80 app [2001:db8::2]:80 []"},
			check: checks(registry.Check{Kind: registry.CheckHTTP, Target: "http://[2001:db8::2]:80/h", Interval: iv}),
		},
	})
}

func TestBuildHealth(t *testing.T) {
	for _, tc := range []struct {
		status   string // "" for no HEALTHCHECK
		starting registry.Health
		want     registry.Health
	}{
		{"", "", ""},
		{container.Healthy, "", registry.HealthPassing},
		{container.Unhealthy, "", registry.HealthCritical},
		{container.Starting, "", registry.HealthCritical},
		{container.Starting, registry.HealthWarning, registry.HealthWarning},
		{container.NoHealthcheck, "", ""},
	} {
		t.Run(tc.status+"/"+string(tc.starting), func(t *testing.T) {
			c := ctr(publish("80/tcp", "", "80"))
			if tc.status != "" {
				health(tc.status)(&c)
			}
			s := Build(c, with(func(o *Options) { o.HealthStarting = tc.starting }))
			if len(s.Instances) != 1 || s.Instances[0].Health != tc.want {
				t.Fatalf("instances %+v, want health %q", s.Instances, tc.want)
			}
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	c := ctr(publish("80/tcp", "", "80"), publish("81/tcp", "", "81"), expose("82/tcp"),
		networks("b=10.0.0.2", "a=10.0.0.1", "c=10.0.0.3"),
		labels("SERVICE_A.B=1", "SERVICE_C.D=2", "SERVICE_E=", "SERVICE_F=", "SERVICE_9_X=1", "SERVICE_TAGS=x,y,z"),
		env("SERVICE_G.H=3", "SERVICE_CHECK_TCP=1", "SERVICE_CHECK_HTTP=/"))
	first := Build(c, baseOpts)
	for range 50 {
		if got := Build(c, baseOpts); !reflect.DeepEqual(got, first) {
			t.Fatalf("BuildSpec is not deterministic:\n%+v\n%+v", first, got)
		}
	}
	if !slices.IsSortedFunc(first.Problems, func(a, b Problem) int {
		return strings.Compare(a.Key+"\x00"+a.Reason, b.Key+"\x00"+b.Reason)
	}) {
		t.Errorf("problems not sorted: %q", first.Problems)
	}
	if first.Problems[0].Container != "web-1" {
		t.Errorf("Problem.Container = %q", first.Problems[0].Container)
	}
}

func TestSpecHash(t *testing.T) {
	base := Build(ctr(publish("80/tcp", "", "80"),
		env("SERVICE_TAGS=a,b", "SERVICE_REGION=eu", "SERVICE_CHECK_HTTP=/h", "SERVICE_WEIGHT=2"), health(container.Healthy)),
		baseOpts).Instances[0]
	if again := Build(ctr(publish("80/tcp", "", "80"),
		env("SERVICE_TAGS=a,b", "SERVICE_REGION=eu", "SERVICE_CHECK_HTTP=/h", "SERVICE_WEIGHT=2"), health(container.Healthy)),
		baseOpts).Instances[0]; again.Meta[MetaSpec] != base.Meta[MetaSpec] {
		t.Fatalf("same input, different hash: %s %s", again.Meta[MetaSpec], base.Meta[MetaSpec])
	}
	h := Hash(base)
	if h != base.Meta[MetaSpec] || len(h) != 16 {
		t.Fatalf("SpecHash = %q, mark %q", h, base.Meta[MetaSpec])
	}
	clone := func(in registry.Instance) registry.Instance {
		in.Tags = slices.Clone(in.Tags)
		m := map[string]string{}
		for k, v := range in.Meta {
			m[k] = v
		}
		in.Meta = m
		in.Checks = slices.Clone(in.Checks)
		return in
	}
	same := map[string]func(*registry.Instance){
		"spec mark":     func(in *registry.Instance) { in.Meta[MetaSpec] = "other" },
		"no spec mark":  func(in *registry.Instance) { delete(in.Meta, MetaSpec) },
		"reported node": func(in *registry.Instance) { in.Node = "agent-2" },
		"expires":       func(in *registry.Instance) { in.Expires = time.Unix(1, 0) },
	}
	for name, f := range same {
		in := clone(base)
		f(&in)
		if Hash(in) != h {
			t.Errorf("%s changes the hash", name)
		}
	}
	differ := map[string]func(*registry.Instance){
		"name":          func(in *registry.Instance) { in.Name = "other" },
		"id":            func(in *registry.Instance) { in.ID += "x" },
		"address":       func(in *registry.Instance) { in.Address = "192.0.2.11" },
		"port":          func(in *registry.Instance) { in.Port++ },
		"tag order":     func(in *registry.Instance) { in.Tags[0], in.Tags[1] = in.Tags[1], in.Tags[0] },
		"tag added":     func(in *registry.Instance) { in.Tags = append(in.Tags, "c") },
		"tags joined":   func(in *registry.Instance) { in.Tags = []string{"ab"} },
		"meta value":    func(in *registry.Instance) { in.Meta["region"] = "us" },
		"meta key":      func(in *registry.Instance) { in.Meta["regio"] = in.Meta["region"]; delete(in.Meta, "region") },
		"node mark":     func(in *registry.Instance) { in.Meta[MetaNode] = "node2" },
		"container":     func(in *registry.Instance) { in.Meta[MetaContainer] = "x" },
		"weight":        func(in *registry.Instance) { in.Weight = 3 },
		"ttl":           func(in *registry.Instance) { in.TTL = time.Second },
		"health":        func(in *registry.Instance) { in.Health = registry.HealthCritical },
		"no check":      func(in *registry.Instance) { in.Checks = nil },
		"check kind":    func(in *registry.Instance) { in.Checks[0].Kind = registry.CheckTCP },
		"check target":  func(in *registry.Instance) { in.Checks[0].Target += "x" },
		"interval":      func(in *registry.Instance) { in.Checks[0].Interval++ },
		"timeout":       func(in *registry.Instance) { in.Checks[0].Timeout++ },
		"deregister":    func(in *registry.Instance) { in.Checks[0].DeregisterAfter++ },
		"method":        func(in *registry.Instance) { in.Checks[0].Method = "HEAD" },
		"header":        func(in *registry.Instance) { in.Checks[0].Header = map[string][]string{"X": {"1"}} },
		"skip verify":   func(in *registry.Instance) { in.Checks[0].TLSSkipVerify = true },
		"initial state": func(in *registry.Instance) { in.Checks[0].InitialStatus = registry.HealthWarning },
	}
	seen := map[string]string{h: "base"}
	for name, f := range differ {
		in := clone(base)
		f(&in)
		got := Hash(in)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: hash %s equals that of %s", name, got, prev)
		}
		seen[got] = name
	}
	if Hash(base) != h {
		t.Fatal("the differ cases modified base")
	}
}

func TestSpecSplitTags(t *testing.T) {
	for in, want := range map[string][]string{
		"":             nil,
		",,,":          nil,
		"a":            {"a"},
		"b,a":          {"b", "a"},
		` a , b `:      {"a", "b"},
		`a\,b,c`:       {"a,b", "c"},
		`a\,`:          {"a,"},
		`\,`:           {","},
		`a\b,c`:        {`a\b`, "c"},
		`a\\,b`:        {`a\,b`},
		"x,,y,":        {"x", "y"},
		`one\,two\,3,`: {"one,two,3"},
	} {
		if got := splitTags(in); !slices.Equal(got, want) {
			t.Errorf("specSplitTags(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpecParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15", 15 * time.Second, true},
		{"0", 0, true},
		{"1m30s", 90 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"abc", 0, false},
		{"", 0, false},
		{"-1s", 0, false},
		{"-5", 0, false},
		{"99999999999999999999", 0, false},
		{"9223372037", 0, false},
		{"9223372036", 9223372036 * time.Second, true},
	} {
		got, err := parseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSpecDuration(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSpecImageName(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                         "nginx",
		"nginx:1.27":                    "nginx",
		"registry:5000/team/app:1.2":    "app",
		"registry:5000/team/app":        "app",
		"app@sha256:abc":                "app",
		"ghcr.io/o/app:v1@sha256:abc":   "app",
		"docker.io/library/redis:7.2.4": "redis",
	} {
		if got := imageName(in); got != want {
			t.Errorf("specImageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildHealthStartingInvalid(t *testing.T) {
	s := Build(ctr(publish("80/tcp", "", "80"), health(container.Starting)),
		with(func(o *Options) { o.HealthStarting = "bogus" }))
	if len(s.Instances) != 1 || s.Instances[0].Health != registry.HealthCritical {
		t.Fatalf("instances %+v", s.Instances)
	}
}
