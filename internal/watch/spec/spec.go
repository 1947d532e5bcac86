package spec

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"

	"github.com/sdctl/sdctl/registry"
)

// Ownership marks: metadata keys the watcher sets on every instance it registers. They are
// reserved: a container's own SERVICE_* key that maps onto one (or onto any other key starting
// with "sdctl-") is reported as a Problem and dropped.
const (
	// MetaNode holds Options.Node: which watcher owns the instance.
	MetaNode = "sdctl-node"
	// MetaContainer holds the full ID of the container the instance was built from.
	MetaContainer = "sdctl-container"
	// MetaSpec holds Hash of the instance: equal hashes mean nothing registered changed.
	MetaSpec = "sdctl-spec"
	// MetaScope holds the watcher's --label selection, when it has one: watchers of one node
	// that watch different containers own different instances.
	MetaScope = "sdctl-scope"
	// metaReserved is how many metadata pairs sdctl's own marks can take.
	metaReserved = 4

	reservedPrefix  = "sdctl-"
	composeLabel    = "com.docker.compose.service"
	defaultInterval = 10 * time.Second
)

// Options are the watcher's settings that shape registrations.
type Options struct {
	// Node is the watcher's identity: the first part of generated IDs and the MetaNode mark.
	Node string
	// Internal registers the container's IP and exposed port; unpublished exposed ports are
	// eligible too (Registrator's -internal).
	Internal bool
	// HostIP, when set, is the address registered for every published port (Registrator's -ip).
	HostIP string
	// DefaultIP is registered for published ports bound to every interface (0.0.0.0 or ::) when
	// HostIP is empty, and for host-network containers.
	DefaultIP string
	// ForceTags are appended to every instance's tags (Registrator's -tags).
	ForceTags []string
	// Explicit skips ports without a name: SERVICE_NAME or SERVICE_<port>_NAME.
	Explicit bool
	// IPFromLabel names a label whose value, with any "/prefix" suffix removed, replaces the
	// registered address (Registrator's -useIpFromLabel).
	IPFromLabel string
	// Network names the network whose container IP is registered in internal mode. A
	// container's SERVICE_NETWORK (or SERVICE_<port>_NETWORK) overrides it.
	Network string
	// TTL is every instance's TTL; a port's SERVICE_CHECK_TTL overrides it.
	TTL time.Duration
	// HealthStarting is the health registered while Docker reports the container's
	// HEALTHCHECK as "starting"; empty means critical.
	HealthStarting registry.Health
}

// Problem is one piece of container metadata (or inspect data) that was skipped.
type Problem struct {
	// Container is the container's name.
	Container string
	// Key is the metadata key as written (SERVICE_80_CHECK_INTERVAL, a label name) when one is
	// at fault; otherwise the inspect field ("Config.Image") or the option ("--ip").
	Key string
	// Reason says what is wrong and what was done about it.
	Reason string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Container + ": " + p.Reason
	}
	return p.Container + ": " + p.Key + ": " + p.Reason
}

// PortSkip is a container port that is not registered, and why.
type PortSkip struct {
	// Port is the port as Docker writes it: "80/tcp".
	Port   string
	Reason string
}

func (s PortSkip) String() string { return s.Port + ": " + s.Reason }

// Spec is what a container should have registered.
type Spec struct {
	ContainerID string
	// ContainerName is the container's name without the leading slash.
	ContainerName string
	// Ignored, when set, says why the whole container is skipped ("not running",
	// "SERVICE_IGNORE is set", "no published ports", ...); Instances is then empty.
	Ignored string
	// Instances are sorted by ID; each one passes registry.Instance.Validate.
	Instances []registry.Instance
	// Skipped lists the ports that are not registered, sorted by port.
	Skipped []PortSkip
	// Problems are sorted by key, then reason.
	Problems []Problem
}

// Build turns one inspected container into the instances to register for it. It is a pure
// function of its arguments: the same input gives the same Spec. docs/watch-metadata.md
// describes the rules.
func Build(c container.InspectResponse, o Options) Spec {
	b := &builder{o: o, labels: map[string]string{}}
	if c.ContainerJSONBase != nil {
		b.id = c.ID
		b.name = strings.TrimPrefix(c.Name, "/")
		if c.HostConfig != nil {
			b.mode = c.HostConfig.NetworkMode
		}
		if c.State != nil {
			b.health = dockerHealth(c.State.Health, o.HealthStarting)
		}
	}
	if b.name == "" {
		b.name = shortID(b.id)
	}
	b.net = c.NetworkSettings
	spec := Spec{ContainerID: b.id, ContainerName: b.name}
	switch {
	case c.ContainerJSONBase == nil || c.Config == nil:
		spec.Ignored = "incomplete inspect data"
		return spec
	case c.State == nil || !c.State.Running:
		spec.Ignored = "not running"
		return spec
	}
	if c.Config.Labels != nil {
		b.labels = c.Config.Labels
	}
	b.image = c.Config.Image

	ports, skipped := b.candidatePorts(c.Config)
	have := map[string]bool{} // port numbers the container has, whatever the protocol
	for _, p := range ports {
		have[strconv.Itoa(p.number)] = true
	}
	for _, p := range skipped {
		if p.number > 0 {
			have[strconv.Itoa(p.number)] = true
		}
	}
	b.collectMeta(c.Config.Env, have)
	if v, ok := b.generic["ignore"]; ok {
		return Spec{ContainerID: b.id, ContainerName: b.name, Ignored: v.key + " is set"}
	}
	spec.Ignored = b.buildAll(ports, &skipped)
	spec.Instances = b.instances
	slices.SortFunc(spec.Instances, func(a, b registry.Instance) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(skipped, func(a, b portSkip) int {
		return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.PortSkip.Port, b.PortSkip.Port))
	})
	for _, s := range skipped {
		spec.Skipped = append(spec.Skipped, s.PortSkip)
	}
	spec.Problems = b.sortedProblems()
	return spec
}

// builder holds one Build call's state.
type builder struct {
	o      Options
	id     string
	name   string
	image  string
	mode   container.NetworkMode
	net    *container.NetworkSettings
	labels map[string]string
	health registry.Health

	generic map[string]metaValue            // lower-cased key without SERVICE_ → value
	perPort map[string]map[string]metaValue // port number → lower-cased key → value

	instances []registry.Instance
	problems  []Problem
}

// metaValue is one SERVICE_* setting and the key it was written as.
type metaValue struct {
	value string
	key   string
}

// portKey is one candidate port of a container.
type portKey struct {
	number   int
	proto    string // tcp or udp
	hostIP   string
	hostPort int // 0: not published
}

func (p portKey) String() string { return strconv.Itoa(p.number) + "/" + p.proto }

type portSkip struct {
	PortSkip
	number int
}

func (b *builder) problem(key, format string, args ...any) {
	b.problems = append(b.problems, Problem{Container: b.name, Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (b *builder) sortedProblems() []Problem {
	out := slices.Clone(b.problems)
	slices.SortFunc(out, func(x, y Problem) int {
		return cmp.Or(strings.Compare(x.Key, y.Key), strings.Compare(x.Reason, y.Reason))
	})
	return slices.Compact(out)
}

func (b *builder) hostNetwork() bool { return b.mode.IsHost() }

// candidatePorts lists the container's ports: its exposed ports, overridden by the runtime port
// bindings. Host-network containers publish their exposed ports on the same number.
func (b *builder) candidatePorts(cfg *container.Config) ([]portKey, []portSkip) {
	byKey := map[string]portKey{}
	var skipped []portSkip
	seenBad := map[string]bool{}
	add := func(raw string, bindings []binding, fromBindings bool) {
		p, why := parsePort(raw)
		if why != "" {
			if !seenBad[raw] {
				seenBad[raw] = true
				skipped = append(skipped, portSkip{PortSkip{Port: abbrev(raw), Reason: why}, p.number})
			}
			return
		}
		if fromBindings {
			if bd, ok := pickBinding(bindings); ok {
				p.hostIP = bd.HostIP
				port, err := strconv.Atoi(bd.HostPort)
				if err == nil && port >= 1 && port <= 65535 {
					p.hostPort = port
				} else if bd.HostPort != "" {
					b.problem("NetworkSettings.Ports", "port %s: host port %s is not a port number", p, quote(bd.HostPort))
				}
			}
		}
		if b.hostNetwork() && p.hostPort == 0 {
			p.hostPort = p.number
		}
		byKey[p.String()] = p
	}
	for raw := range cfg.ExposedPorts {
		add(string(raw), nil, false)
	}
	if b.net != nil {
		// In key order: "80" and "80/tcp" name the same port, and the explicit form, sorted
		// last, wins whatever the map's order.
		for _, raw := range slices.Sorted(maps.Keys(b.net.Ports)) {
			list := b.net.Ports[raw]
			bindings := make([]binding, len(list))
			for i, bd := range list {
				bindings[i] = binding{HostIP: bd.HostIP, HostPort: bd.HostPort}
			}
			add(string(raw), bindings, true)
		}
	}
	ports := make([]portKey, 0, len(byKey))
	for _, p := range byKey {
		ports = append(ports, p)
	}
	slices.SortFunc(ports, func(a, b portKey) int {
		return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.proto, b.proto))
	})
	return ports, skipped
}

type binding struct{ HostIP, HostPort string }

// pickBinding prefers the first IPv4 (or unspecified-address) binding, else the first one.
func pickBinding(list []binding) (binding, bool) {
	for _, bd := range list {
		if bd.HostIP == "" {
			return bd, true
		}
		if ip, err := netip.ParseAddr(bd.HostIP); err == nil && ip.Is4() {
			return bd, true
		}
	}
	if len(list) > 0 {
		return list[0], true
	}
	return binding{}, false
}

// parsePort parses Docker's "80/tcp" ("80" means tcp).
func parsePort(raw string) (portKey, string) {
	num, proto, _ := strings.Cut(raw, "/")
	if proto == "" {
		proto = "tcp"
	}
	n, err := strconv.Atoi(num)
	if err != nil || !allDigits(num) || n < 1 || n > 65535 {
		return portKey{}, "invalid port"
	}
	p := portKey{number: n, proto: strings.ToLower(proto)}
	if p.proto != "tcp" && p.proto != "udp" {
		return portKey{number: n}, "protocol " + quote(proto) + " is not registered (tcp and udp only)"
	}
	return p, ""
}

// collectMeta reads the SERVICE_* keys of the environment, then of the labels (so labels win),
// into generic and per-port settings. Keys of ports the container does not have are Problems.
func (b *builder) collectMeta(env []string, have map[string]bool) {
	b.generic = map[string]metaValue{}
	b.perPort = map[string]map[string]metaValue{}
	set := func(key, value string, label bool) {
		if !strings.HasPrefix(key, "SERVICE_") {
			return
		}
		if value == "" {
			if label {
				b.problem(abbrev(key), "empty value ignored")
			}
			return
		}
		rest := strings.ToLower(strings.TrimPrefix(key, "SERVICE_"))
		mv := metaValue{value: value, key: abbrev(key)}
		if port, sub, ok := strings.Cut(rest, "_"); ok && allDigits(port) {
			if !have[port] {
				b.problem(mv.key, "port %s is not exposed", abbrev(port))
				return
			}
			if b.perPort[port] == nil {
				b.perPort[port] = map[string]metaValue{}
			}
			b.perPort[port][sub] = mv
			return
		}
		b.generic[rest] = mv
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set(k, v, false)
		}
	}
	keys := make([]string, 0, len(b.labels))
	for k := range b.labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set(k, b.labels[k], true)
	}
}

// portMeta is the view of the settings for one port: per-port keys beat generic ones.
type portMeta struct {
	port    map[string]metaValue
	generic map[string]metaValue
}

func (m portMeta) get(key string) (metaValue, bool) {
	if v, ok := m.port[key]; ok {
		return v, true
	}
	v, ok := m.generic[key]
	return v, ok
}

func (m portMeta) keys() []string {
	var out []string
	for k := range m.generic {
		out = append(out, k)
	}
	for k := range m.port {
		if _, dup := m.generic[k]; !dup {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// buildAll registers the eligible ports; it returns why the container is ignored, if it is.
func (b *builder) buildAll(ports []portKey, skipped *[]portSkip) string {
	skip := func(p portKey, format string, args ...any) {
		*skipped = append(*skipped, portSkip{PortSkip{Port: p.String(), Reason: fmt.Sprintf(format, args...)}, p.number})
	}
	if b.o.Internal && b.mode.IsContainer() {
		why := "shares another container's network (" + quote(string(b.mode)) + "); not supported with --internal"
		b.problem("HostConfig.NetworkMode", "%s", why)
		return why
	}
	var eligible []portKey
	for _, p := range ports {
		if !b.o.Internal && p.hostPort == 0 {
			skip(p, "not published")
			continue
		}
		eligible = append(eligible, p)
	}
	if len(eligible) == 0 {
		if b.o.Internal {
			return "no exposed ports"
		}
		return "no published ports"
	}
	group := len(eligible) > 1

	defaultName, noName := b.defaultName()
	if noName != "" && !b.o.Explicit {
		if _, ok := b.generic["name"]; !ok {
			named := false
			for _, p := range eligible {
				if _, ok := b.perPort[strconv.Itoa(p.number)]["name"]; ok {
					named = true
				}
			}
			if !named {
				b.problem("Config.Image", "%s", noName)
				return noName
			}
		}
	}
	// Ports whose number is eligible with both protocols: a per-port SERVICE_<n>_ID applies to both.
	protos := map[int]int{}
	for _, p := range eligible {
		protos[p.number]++
	}
	usedIDs := map[string]string{}
	for _, p := range eligible {
		inst, why := b.buildPort(p, group, protos[p.number] > 1, defaultName, noName)
		if why != "" {
			skip(p, "%s", why)
			continue
		}
		if other, dup := usedIDs[inst.ID]; dup {
			b.problem("", "port %s: ID %s is already used by port %s; port skipped", p, quote(inst.ID), other)
			skip(p, "duplicate ID")
			continue
		}
		usedIDs[inst.ID] = p.String()
		b.instances = append(b.instances, inst)
	}
	return ""
}

// defaultName is the service name derived from the image, or why there is none.
func (b *builder) defaultName() (name, noName string) {
	img := b.image
	if img == "" || isImageID(img) {
		if svc := b.labels[composeLabel]; svc != "" {
			return svc, ""
		}
		if img == "" {
			return "", "the container has no image name and no " + composeLabel + " label; set SERVICE_NAME"
		}
		return "", "the image is referenced by ID (" + quote(img) + ") and there is no " + composeLabel + " label; set SERVICE_NAME"
	}
	return imageName(img), ""
}

// imageName is Registrator's default name: the part after the last '/', cut at the first
// ':', and also at '@' (digest references).
func imageName(img string) string {
	base := img[strings.LastIndex(img, "/")+1:]
	base, _, _ = strings.Cut(base, ":")
	base, _, _ = strings.Cut(base, "@")
	return base
}

func isImageID(img string) bool {
	if strings.HasPrefix(img, "sha256:") {
		return true
	}
	if len(img) != 64 {
		return false
	}
	for _, r := range img {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// buildPort builds the instance of one eligible port, or says why the port is skipped.
func (b *builder) buildPort(p portKey, group, bothProtos bool, defaultName, noName string) (registry.Instance, string) {
	portStr := strconv.Itoa(p.number)
	m := portMeta{port: b.perPort[portStr], generic: b.generic}
	udp := p.proto == "udp"

	if v, ok := m.get("ignore"); ok {
		return registry.Instance{}, v.key + " is set"
	}

	// Name.
	var name string
	nameKey := "Config.Image"
	if v, ok := m.port["name"]; ok {
		name, nameKey = v.value, v.key
	} else {
		if v, ok := m.generic["name"]; ok {
			name, nameKey = v.value, v.key
		} else if b.o.Explicit {
			return registry.Instance{}, "no name (SERVICE_NAME or SERVICE_" + portStr + "_NAME) with --explicit"
		} else if noName != "" {
			b.problem(nameKey, "%s", noName)
			return registry.Instance{}, "no service name"
		} else {
			name = defaultName
		}
		if group {
			name += "-" + portStr
		}
	}
	if err := registry.ValidateName(name); err != nil {
		b.problem(nameKey, "port %s: %s; port skipped", p, errReason(err))
		return registry.Instance{}, "invalid service name"
	}

	// ID.
	var id, idKey string
	if v, ok := m.port["id"]; ok {
		id, idKey = v.value, v.key
		if udp && bothProtos {
			id += ":udp"
		}
	} else if v, ok := m.generic["id"]; ok {
		id, idKey = v.value, v.key
		if group {
			id += ":" + portStr
			if udp {
				id += ":udp"
			}
		}
	} else {
		id = b.o.Node + ":" + b.name + ":" + portStr
		if udp {
			id += ":udp"
		}
	}
	if err := registry.ValidateID(id); err != nil {
		b.problem(idKey, "port %s: %s; port skipped", p, errReason(err))
		return registry.Instance{}, "invalid ID"
	}

	// Address and port.
	addr, port, why := b.address(p, m)
	if why != "" {
		return registry.Instance{}, why
	}

	inst := registry.Instance{ID: id, Name: name, Address: addr, Port: port, TTL: b.o.TTL, Health: b.health}
	inst.Tags = b.tags(m, udp)
	inst.Meta = b.meta(m)
	if v, ok := m.get("weight"); ok {
		w, err := strconv.Atoi(v.value)
		if err != nil || w < 1 {
			b.problem(v.key, "weight %s is not a positive integer; ignored", quote(v.value))
		} else {
			inst.Weight = w
		}
	}
	b.checks(&inst, m)
	inst.Meta[MetaSpec] = Hash(inst)
	if err := inst.Validate(); err != nil { // a safety net: every field was checked above
		b.problem("", "port %s: %s; port skipped", p, errReason(err))
		return registry.Instance{}, "invalid registration"
	}
	return inst, ""
}

// address picks the registered address and port; why is set when the port is skipped.
func (b *builder) address(p portKey, m portMeta) (addr string, port int, why string) {
	port = p.hostPort
	if b.o.Internal {
		port = p.number
	}
	var source string
	if b.o.IPFromLabel != "" {
		v := b.labels[b.o.IPFromLabel]
		v, _, _ = strings.Cut(v, "/")
		if v != "" {
			addr, source = v, abbrev(b.o.IPFromLabel)
		} else {
			b.problem(abbrev(b.o.IPFromLabel), "label is not set; using the usual address")
		}
	}
	if addr == "" {
		switch {
		case !b.o.Internal || b.hostNetwork():
			addr, source = b.publishedAddress(p)
			if addr == "" {
				if b.hostNetwork() {
					b.problem("--ip", "port %s: the container uses the host's network and no host address is known; set --ip", p)
				} else {
					b.problem("--ip", "port %s is bound to every interface and no host address is known; set --ip", p)
				}
				return "", 0, "no address"
			}
		default:
			var problemKey, why string
			addr, source, problemKey, why = b.containerAddress(m)
			if why != "" {
				b.problem(problemKey, "%s", why)
				return "", 0, why
			}
		}
	}
	if err := registry.ValidateAddress(addr); err != nil {
		b.problem(source, "port %s: %s; port skipped", p, errReason(err))
		return "", 0, "invalid address"
	}
	return addr, port, ""
}

// publishedAddress is the host address of a published port: --ip, else the binding's own
// address when it names one, else the default address.
func (b *builder) publishedAddress(p portKey) (addr, source string) {
	if b.o.HostIP != "" {
		return b.o.HostIP, "--ip"
	}
	if p.hostIP != "" {
		if ip, err := netip.ParseAddr(p.hostIP); err != nil || !ip.IsUnspecified() {
			return p.hostIP, "NetworkSettings.Ports"
		}
	}
	return b.o.DefaultIP, "default address"
}

// containerAddress is the container's IP on the chosen network (internal mode).
func (b *builder) containerAddress(m portMeta) (addr, source, problemKey, why string) {
	networks := b.endpoints()
	named, key := "", ""
	if v, ok := m.get("network"); ok {
		named, key = v.value, v.key
	} else if b.o.Network != "" {
		named, key = b.o.Network, "--network"
	}
	if named != "" {
		ep, ok := networks[named]
		if !ok {
			return "", "", key, "the container is not attached to network " + quote(named)
		}
		if a := ep.address(); a != "" {
			return a, key, "", ""
		}
		return "", "", key, "the container has no IP address on network " + quote(named)
	}
	modeNet := string(b.mode)
	if b.mode.IsDefault() || modeNet == "" {
		modeNet = "bridge"
	}
	if ep, ok := networks[modeNet]; ok && ep.address() != "" {
		return ep.address(), "NetworkSettings.Networks", "", ""
	}
	// The deprecated default-bridge fields, which older engines fill in.
	if b.net != nil {
		if b.net.IPAddress != "" {
			return b.net.IPAddress, "NetworkSettings.IPAddress", "", ""
		}
		if b.net.GlobalIPv6Address != "" {
			return b.net.GlobalIPv6Address, "NetworkSettings.GlobalIPv6Address", "", ""
		}
	}
	names := make([]string, 0, len(networks))
	for n := range networks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if a := networks[n].address(); a != "" {
			return a, "NetworkSettings.Networks", "", ""
		}
	}
	return "", "", "NetworkSettings.Networks", "the container has no IP address on any network"
}

type endpoint struct{ ipv4, ipv6 string }

// address prefers the IPv4 address and falls back to the global IPv6 one.
func (e *endpoint) address() string { return cmp.Or(e.ipv4, e.ipv6) }

func (b *builder) endpoints() map[string]*endpoint {
	out := map[string]*endpoint{}
	if b.net == nil {
		return out
	}
	for name, ep := range b.net.Networks {
		e := &endpoint{}
		if ep != nil {
			e.ipv4, e.ipv6 = ep.IPAddress, ep.GlobalIPv6Address
		}
		out[name] = e
	}
	return out
}

// tags are SERVICE_TAGS, then the forced tags, then "udp" for UDP ports, without duplicates.
func (b *builder) tags(m portMeta, udp bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(key, t string) {
		if seen[t] {
			return
		}
		seen[t] = true
		if err := registry.ValidateTags([]string{t}); err != nil {
			b.problem(key, "%s; tag dropped", errReason(err))
			return
		}
		out = append(out, t)
	}
	if v, ok := m.get("tags"); ok {
		for _, t := range splitTags(v.value) {
			add(v.key, t)
		}
	}
	for _, t := range b.o.ForceTags {
		if t = strings.TrimSpace(t); t != "" {
			add("--tags", t)
		}
	}
	if udp {
		add("", "udp")
	}
	return out
}

// splitTags splits a comma-separated list in order; "\," is a literal comma, spaces around
// items are trimmed and empty items dropped.
func splitTags(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return out
}

// recognised keys never become metadata; check_* keys do not either.
var recognisedKeys = map[string]bool{"name": true, "id": true, "tags": true, "ignore": true, "network": true, "weight": true}

// meta turns the unrecognised keys into metadata and adds the ownership marks (the spec hash
// is added by the caller once the instance is complete).
func (b *builder) meta(m portMeta) map[string]string {
	meta := map[string]string{MetaNode: b.o.Node, MetaContainer: b.id}
	room := registry.MaxMetaPairs - metaReserved
	for _, k := range m.keys() {
		if recognisedKeys[k] || strings.HasPrefix(k, "check_") {
			continue
		}
		v, _ := m.get(k)
		invalid := registry.ValidateMeta(map[string]string{k: v.value})
		switch {
		case strings.HasPrefix(strings.ToLower(k), reservedPrefix):
			b.problem(v.key, "metadata key %s is reserved for sdctl's ownership marks; ignored", quote(k))
		case invalid != nil:
			b.problem(v.key, "%s; ignored", errReason(invalid))
		case room == 0:
			b.problem(v.key, "too many metadata keys (at most %d besides sdctl's own); ignored", registry.MaxMetaPairs-metaReserved)
		default:
			meta[k] = v.value
			room--
		}
	}
	return meta
}

// checkKinds are the check keys in Registrator's order of precedence: the first one set wins.
var checkKinds = []string{"check_http", "check_https", "check_script", "check_ttl", "check_tcp", "check_grpc"}

// checkSettings are the other check keys.
var checkSettings = map[string]bool{
	"check_http_method": true, "check_https_method": true, "check_tls_skip_verify": true,
	"check_grpc_use_tls": true, "check_interval": true, "check_timeout": true,
	"check_initial_status": true, "check_deregister_after": true, "check_cmd": true,
}

// checks adds the port's health check (or, for SERVICE_CHECK_TTL, its TTL) to inst.
func (b *builder) checks(inst *registry.Instance, m portMeta) {
	for _, k := range m.keys() {
		if strings.HasPrefix(k, "check_") && !checkSettings[k] && !slices.Contains(checkKinds, k) {
			v, _ := m.get(k)
			b.problem(v.key, "unknown check setting; ignored")
		}
	}
	if v, ok := m.get("check_cmd"); ok {
		b.problem(v.key, "not supported (use SERVICE_CHECK_SCRIPT); ignored")
	}
	var kind string
	var kv metaValue
	for _, k := range checkKinds {
		v, ok := m.get(k)
		if !ok {
			continue
		}
		if kind == "" {
			kind, kv = k, v
			continue
		}
		b.problem(v.key, "ignored: one check per port, and %s takes precedence", kv.key)
	}
	if kind == "" {
		return
	}
	drop := func(key, format string, args ...any) {
		b.problem(key, format+"; check dropped", args...)
	}
	if kind == "check_ttl" {
		d, err := parseDuration(kv.value)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			b.problem(kv.key, "TTL %s: %s; ignored", quote(kv.value), err)
			return
		}
		inst.TTL = d
		return
	}

	c := registry.Check{Interval: defaultInterval}
	hostport := registry.HostPort(inst.Address, inst.Port)
	switch kind {
	case "check_http", "check_https":
		scheme := strings.TrimPrefix(kind, "check_")
		path := kv.value
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		c.Kind, c.Target = registry.CheckHTTP, scheme+"://"+hostport+path
		if u, err := url.Parse(c.Target); err != nil || u.Host == "" {
			drop(kv.key, "path %s does not make a valid URL", quote(kv.value))
			return
		}
		if v, ok := m.get(kind + "_method"); ok {
			method := strings.ToUpper(v.value)
			if !isToken(method) {
				drop(v.key, "method %s is not an HTTP method", quote(v.value))
				return
			}
			c.Method = method
		}
		if _, ok := m.get("check_tls_skip_verify"); ok && kind == "check_https" {
			c.TLSSkipVerify = true
		}
	case "check_script":
		c.Kind = registry.CheckScript
		c.Target = strings.ReplaceAll(kv.value, "$SERVICE_IP", inst.Address)
		c.Target = strings.ReplaceAll(c.Target, "$SERVICE_PORT", strconv.Itoa(inst.Port))
	case "check_tcp":
		c.Kind, c.Target = registry.CheckTCP, hostport
	case "check_grpc":
		c.Kind, c.Target = registry.CheckGRPC, hostport
		if v, ok := m.get("check_grpc_use_tls"); ok {
			// Registrator turns TLS on for any value; sdctl reads the usual true/false spellings.
			useTLS, err := strconv.ParseBool(strings.TrimSpace(v.value))
			if err != nil {
				drop(v.key, "%s is not true or false", quote(v.value))
				return
			}
			c.GRPCUseTLS = useTLS
			// As with Registrator: a gRPC check over TLS honours CHECK_TLS_SKIP_VERIFY.
			if _, ok := m.get("check_tls_skip_verify"); ok && useTLS {
				c.TLSSkipVerify = true
			}
		}
	}
	durations := []struct {
		key string
		dst *time.Duration
	}{{"check_interval", &c.Interval}, {"check_timeout", &c.Timeout}, {"check_deregister_after", &c.DeregisterAfter}}
	for _, d := range durations {
		v, ok := m.get(d.key)
		if !ok {
			continue
		}
		dur, err := parseDuration(v.value)
		if err != nil {
			drop(v.key, "%s: %s", quote(v.value), err)
			return
		}
		if dur > 0 {
			*d.dst = dur
		}
	}
	if v, ok := m.get("check_initial_status"); ok {
		switch s := registry.Health(strings.ToLower(v.value)); s {
		case registry.HealthPassing, registry.HealthWarning, registry.HealthCritical:
			c.InitialStatus = s
		default:
			drop(v.key, "initial status %s is not passing, warning or critical", quote(v.value))
			return
		}
	}
	if err := registry.ValidateCheck(c); err != nil {
		drop(kv.key, "%s", errReason(err))
		return
	}
	inst.Checks = append(inst.Checks, c)
}

// parseDuration reads a Go duration ("1m30s") or a bare number of seconds ("15"), as
// Consul does. Negative durations are refused.
func parseDuration(s string) (time.Duration, error) {
	if allDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, errors.New("too large")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration (use 10s, 1m30s, or a number of seconds)")
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	return d, nil
}

func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// dockerHealth maps Docker's HEALTHCHECK state onto instance health; empty without one.
func dockerHealth(h *container.Health, starting registry.Health) registry.Health {
	if h == nil {
		return ""
	}
	switch h.Status {
	case container.Healthy:
		return registry.HealthPassing
	case container.Unhealthy:
		return registry.HealthCritical
	case container.Starting:
		if registry.ValidateHealth(starting) != nil || starting == "" {
			return registry.HealthCritical
		}
		return starting
	}
	return ""
}

// Hash is a short, stable digest of everything registered for inst except the MetaSpec mark
// itself (and the fields a registry reports: Node, Expires): name, ID, address, port, tags in
// order, metadata, weight, TTL, checks and health. Two instances with the same hash register the
// same thing.
func Hash(inst registry.Instance) string {
	h := sha256.New()
	w := hashWriter{h: h}
	w.str("sdctl-spec/1")
	w.str(inst.Name)
	w.str(inst.ID)
	w.str(inst.Address)
	w.num(int64(inst.Port))
	w.num(int64(len(inst.Tags)))
	for _, t := range inst.Tags {
		w.str(t)
	}
	keys := make([]string, 0, len(inst.Meta))
	for k := range inst.Meta {
		if k != MetaSpec {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	w.num(int64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(inst.Meta[k])
	}
	w.num(int64(inst.Weight))
	w.num(int64(inst.TTL))
	w.num(int64(len(inst.Checks)))
	for _, c := range inst.Checks {
		w.str(string(c.Kind))
		w.str(c.Target)
		w.num(int64(c.Interval))
		w.num(int64(c.Timeout))
		w.num(int64(c.DeregisterAfter))
		w.str(c.Method)
		hk := make([]string, 0, len(c.Header))
		for k := range c.Header {
			hk = append(hk, k)
		}
		slices.Sort(hk)
		w.num(int64(len(hk)))
		for _, k := range hk {
			w.str(k)
			w.num(int64(len(c.Header[k])))
			for _, v := range c.Header[k] {
				w.str(v)
			}
		}
		if c.TLSSkipVerify {
			w.num(1)
		} else {
			w.num(0)
		}
		w.str(string(c.InitialStatus))
		if c.GRPCUseTLS { // only when set, so the hashes of other checks stay as they were
			w.str("grpc-tls")
		}
	}
	w.str(string(inst.Health))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// hashWriter writes length-prefixed fields, so no two field sequences encode alike.
type hashWriter struct{ h hash.Hash }

func (w hashWriter) num(n int64) {
	var buf [binary.MaxVarintLen64]byte
	w.h.Write(buf[:binary.PutVarint(buf[:], n)])
}

func (w hashWriter) str(s string) {
	w.num(int64(len(s)))
	w.h.Write([]byte(s))
}

// errReason is an error's message without the registry's field prefix.
func errReason(err error) string {
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// quote quotes a value for a message, shortened and on one line whatever it holds.
func quote(s string) string { return strconv.Quote(abbrev(s)) }

// abbrev makes hostile input fit a one-line message: valid UTF-8, control characters
// replaced by '?', at most 80 bytes.
func abbrev(s string) string {
	const limit = 80
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
