// Package registry is sdctl's domain: service instances, their health, queries, change events,
// the state of a registry cluster, and the Registry interface every backend implements.
//
// It imports no CLI, configuration or transport package, so backends and plugins can depend on
// it without pulling those in. Errors that callers act on are the sentinels in errors.go.
package registry

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Registry is a service registry: a place instances are registered in and resolved from.
//
// Every method takes a context first and honours its deadline. Methods return errors wrapping
// the sentinels of this package (ErrNotFound, ErrInvalid, ErrUnavailable, ...) so callers can
// branch with errors.Is, also across the plugin process boundary.
type Registry interface {
	// Register adds inst or replaces the instance with the same ID (checks and declared health
	// included: see Instance.Health).
	// A backend that cannot honour a field (checks, for example) fails with ErrUnsupported.
	Register(ctx context.Context, inst Instance) error
	// Deregister removes the instance with the given ID; ErrNotFound when there is none.
	Deregister(ctx context.Context, id string) error
	// Heartbeat renews the TTL of the instance with the given ID; ErrNotFound when there is
	// none, ErrInvalid when the instance has no TTL.
	Heartbeat(ctx context.Context, id string) error
	// Instances returns the instances of q.Name that match q, sorted by ID.
	Instances(ctx context.Context, q Query) ([]Instance, error)
	// Services summarises every registered service, sorted by name.
	Services(ctx context.Context) ([]Service, error)
	// Watch calls fn with the instances of req.Name (all services when empty) each time that set
	// changes, starting with the current set unless it is still at req.Index. It returns when ctx
	// ends (with ctx.Err()), when fn returns an error (with that error), or when the backend fails.
	Watch(ctx context.Context, req WatchRequest, fn func(Event) error) error
	// ClusterStatus describes the registry's servers: leader, members and their health.
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	// Info names the backend and what it supports.
	Info(ctx context.Context) (Info, error)
	// Close releases what the registry holds. Calling other methods afterwards is an error.
	Close() error
}

// Health is the state of an instance as its registry sees it.
type Health string

// The health states, from best to worst. Maintenance means an operator took the instance out.
const (
	HealthPassing     Health = "passing"
	HealthWarning     Health = "warning"
	HealthCritical    Health = "critical"
	HealthMaintenance Health = "maintenance"
)

// Healthy reports whether an instance in state h should receive traffic. Warning counts only when
// includeWarning is set, as with Consul's passing filter.
func (h Health) Healthy(includeWarning bool) bool {
	return h == HealthPassing || (includeWarning && h == HealthWarning)
}

// Worse returns the worse of h and o in the order passing, warning, critical, maintenance. Empty
// counts as passing, and so does the result of two empty states; an unknown state counts as
// critical. A registry combines a declared state with its own verdict this way.
func (h Health) Worse(o Health) Health {
	if o.severity() > h.severity() {
		h = o
	}
	if h == "" {
		return HealthPassing
	}
	return h
}

func (h Health) severity() int {
	switch h {
	case "", HealthPassing:
		return 0
	case HealthWarning:
		return 1
	case HealthMaintenance:
		return 3
	}
	return 2
}

// Instance is one reachable endpoint of a service. Its JSON form is defined once, in json.go
// (MarshalJSON, UnmarshalJSON, DecodeInstance, InstanceKeys).
type Instance struct {
	ID      string
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	// Weight biases the weighted strategy: 1 to MaxWeight; zero means the default of 1.
	Weight int
	// Drain takes the instance out of rotation while keeping it registered: it is listed (catalog,
	// resolve --all, watches) but never picked by resolve, whatever the strategy. Users write it
	// as weight 0 (--weight 0, "weight": 0 in JSON). Backends advertise it as CapDrain.
	Drain bool
	// TTL, when set, makes the instance critical unless Heartbeat is called within TTL.
	TTL    time.Duration
	Checks []Check
	// Health is the instance's state as Instances reports it. On Register it declares the state
	// when set (passing, warning, critical or maintenance), for instances whose health is known
	// outside the registry, such as a container's HEALTHCHECK. The declared state is an upper
	// bound: the registry's own verdict wins when it is worse, so a TTL that runs out without a
	// heartbeat still makes the instance critical (or removes it, where expiry deletes), and a
	// failing check still counts. Empty declares nothing: the registry alone decides, from its
	// checks and TTL, and a state declared by an earlier registration of the ID is dropped.
	Health Health

	// Fields below are reported by the registry and ignored by Register.

	// Node names the registry node or agent that holds the instance, when the backend has one.
	Node string
	// Expires is when a TTL instance turns critical without a heartbeat.
	Expires time.Time
}

// RenewEvery is how often whoever keeps a TTL instance alive (register --keepalive, the
// watcher) renews it: every third of the TTL. A renewal that fails, or arrives late, then still
// leaves room for the next one before the TTL runs out and the instance turns critical; at half
// the TTL a single failure would leave none. Zero for an instance without a TTL.
func RenewEvery(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return max(ttl/3, 1) // never zero, which a ticker refuses
}

// CheckKind says how a registry probes an instance.
type CheckKind string

// The check kinds sdctl knows; backends advertise which they run in Info.Capabilities.
const (
	CheckHTTP   CheckKind = "http"
	CheckTCP    CheckKind = "tcp"
	CheckGRPC   CheckKind = "grpc"
	CheckScript CheckKind = "script"
	// CheckTTL is the instance's own TTL (Instance.TTL) seen as a check: it has no target and
	// no interval, and carries what else a TTL check can say, its InitialStatus (the health
	// before the first heartbeat) and DeregisterAfter (remove the instance once its TTL has
	// run out this long). It is valid only on an instance with a TTL, at most once.
	CheckTTL CheckKind = "ttl"
)

// Check is a health probe run by the registry (not by sdctl). Its JSON form is defined in
// json.go, like Instance's.
type Check struct {
	Kind CheckKind
	// Target is what the probe contacts: a URL for http, host:port for tcp and grpc, a command
	// line for script.
	Target          string
	Interval        time.Duration
	Timeout         time.Duration
	DeregisterAfter time.Duration
	Method          string
	Header          map[string][]string
	TLSSkipVerify   bool
	InitialStatus   Health
	// GRPCUseTLS makes a grpc check connect with TLS.
	GRPCUseTLS bool
}

// Query selects instances of one service.
type Query struct {
	Name string
	// Tags keeps instances carrying every one of these tags.
	Tags []string
	// HealthyOnly drops instances that are not passing (or warning, with IncludeWarning).
	HealthyOnly    bool
	IncludeWarning bool
	// Pick, when set, asks for one instance only: the match at index *Pick modulo the number of
	// matches that are not drained, in ID order (none when no such match), as PickFrom does. It lets a client choose by position
	// (first, random, round-robin) without receiving every match. Backends may ignore it and
	// return all matches; callers then apply PickFrom themselves, with the same result.
	Pick *uint64
}

// Matches reports whether inst satisfies q, given its current health.
func (q Query) Matches(inst Instance) bool {
	if q.Name != "" && inst.Name != q.Name {
		return false
	}
	if q.HealthyOnly && !inst.Health.Healthy(q.IncludeWarning) {
		return false
	}
	for _, want := range q.Tags {
		if !hasString(inst.Tags, want) {
			return false
		}
	}
	return true
}

// PickFrom applies a Query.Pick position to matches sorted by ID: the one instance at pick
// modulo the number of matches not drained, or none when every match is drained or there is none.
func PickFrom(matches []Instance, pick uint64) []Instance {
	live := Pickable(matches)
	if len(live) == 0 {
		return live
	}
	i := pick % uint64(len(live))
	return live[i : i+1 : i+1]
}

// Pickable returns the instances that are not drained, in order; insts itself when none is.
func Pickable(insts []Instance) []Instance {
	n := 0
	for _, in := range insts {
		if !in.Drain {
			n++
		}
	}
	if n == len(insts) {
		return insts
	}
	out := make([]Instance, 0, n)
	for _, in := range insts {
		if !in.Drain {
			out = append(out, in)
		}
	}
	return out
}

// Service summarises one service across its instances.
type Service struct {
	Name      string   `json:"name"`
	Instances int      `json:"instances"`
	Passing   int      `json:"passing"`
	Tags      []string `json:"tags,omitempty"`
}

// Summarize groups instances into services: instance and passing counts and the union of tags,
// services sorted by name and tags sorted. Backends that hold their instances in one list use it
// for Services.
func Summarize(insts []Instance) []Service {
	byName := map[string]*Service{}
	for _, inst := range insts {
		svc := byName[inst.Name]
		if svc == nil {
			svc = &Service{Name: inst.Name}
			byName[inst.Name] = svc
		}
		svc.Instances++
		if inst.Health.Healthy(false) {
			svc.Passing++
		}
		for _, t := range inst.Tags {
			if !slices.Contains(svc.Tags, t) {
				svc.Tags = append(svc.Tags, t)
			}
		}
	}
	out := make([]Service, 0, len(byName))
	for _, svc := range byName {
		slices.Sort(svc.Tags)
		out = append(out, *svc)
	}
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// WatchRequest says what to watch and from which point.
type WatchRequest struct {
	// Name limits the watch to one service; empty watches every instance.
	Name string
	// Index is the last index the caller has seen; zero means "send the current state first".
	Index uint64
}

// Event carries the full set of watched instances after a change, with the registry index (or
// revision) it reflects. Passing Index back in a WatchRequest resumes after this event.
type Event struct {
	Index     uint64     `json:"index"`
	Instances []Instance `json:"instances"`
}

// BatchRegisterer is implemented by registries that register many instances in one call
// faster than one by one (the file backend: one lock and one rewrite for all). RegisterBatch
// registers every instance as Register would; IDs must be unique within the batch. A backend
// that has it advertises CapBatchRegister, so that callers across the plugin boundary know.
type BatchRegisterer interface {
	RegisterBatch(ctx context.Context, insts []Instance) error
}

// ClusterStatus describes the servers behind a registry.
type ClusterStatus struct {
	Backend string `json:"backend"`
	// Leader is the leader's name or address; empty when the cluster has none.
	Leader  string   `json:"leader"`
	Members []Member `json:"members"`
	// Notes carries caveats, such as data that could not be read with the current permissions.
	Notes []string `json:"notes,omitempty"`
}

// Member is one server (or, for the file backend, the file itself).
type Member struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Role    string            `json:"role"`
	Leader  bool              `json:"leader"`
	Health  string            `json:"health"`
	Version string            `json:"version,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// Info describes a backend.
type Info struct {
	Name         string       `json:"name"`
	Version      string       `json:"version"`
	Capabilities []Capability `json:"capabilities,omitempty"`
	// Options lists the configuration keys the backend reads from its config section.
	Options []Option `json:"options,omitempty"`
}

// Has reports whether the backend advertises capability c.
func (i Info) Has(c Capability) bool {
	for _, have := range i.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// Capability names an optional feature of a backend.
type Capability string

// Capabilities a backend may advertise.
const (
	CapTTL     Capability = "ttl"
	CapWatch   Capability = "watch"
	CapWeights Capability = "weights"
	// CapDrain: the backend stores Instance.Drain.
	CapDrain Capability = "drain"
	// CapGRPCTLS: the backend's grpc checks can use TLS (Check.GRPCUseTLS).
	CapGRPCTLS Capability = "check:grpc-tls"
	// CapBatchRegister: the backend implements BatchRegisterer.
	CapBatchRegister Capability = "batch-register"
	// CapCheckPrefix + a CheckKind: the backend runs that kind of check.
	CapCheckPrefix = "check:"
)

// CheckCapability is the capability a backend advertises when it runs checks of kind k.
func CheckCapability(k CheckKind) Capability { return Capability(CapCheckPrefix + string(k)) }

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Supports returns an ErrUnsupported error when registering inst would need a feature the
// backend does not advertise (a TTL, a weight, a kind of check), so that a caller can refuse a
// whole batch before writing any of it.
func (i Info) Supports(inst Instance) error {
	if inst.TTL > 0 && !i.Has(CapTTL) {
		return Errorf(ErrUnsupported, "instance %s: the %s backend does not support TTLs", inst.ID, i.Name)
	}
	if inst.Weight > 0 && !i.Has(CapWeights) {
		return Errorf(ErrUnsupported, "instance %s: the %s backend does not store weights", inst.ID, i.Name)
	}
	if inst.Drain && !i.Has(CapDrain) {
		return Errorf(ErrUnsupported, "instance %s: the %s backend cannot drain an instance (weight 0)", inst.ID, i.Name)
	}
	for _, c := range inst.Checks {
		if c.GRPCUseTLS && !i.Has(CapGRPCTLS) {
			return Errorf(ErrUnsupported, "instance %s: the %s backend cannot run grpc checks over TLS", inst.ID, i.Name)
		}
		if c.Kind == CheckTTL && !i.Has(CheckCapability(c.Kind)) {
			return Errorf(ErrUnsupported, "instance %s: the %s backend cannot give a TTL an initial status or a deregister-after", inst.ID, i.Name)
		}
		if !i.Has(CheckCapability(c.Kind)) {
			return Errorf(ErrUnsupported, "instance %s: the %s backend runs no %s checks%s", inst.ID, i.Name, c.Kind, i.checkHint())
		}
	}
	return nil
}

func (i Info) checkHint() string {
	var kinds []string
	for _, c := range i.Capabilities {
		if k, ok := strings.CutPrefix(string(c), CapCheckPrefix); ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return " (it runs no checks: register with --ttl and keep the instance alive with --keepalive, or use the consul backend)"
	}
	return " (it runs " + strings.Join(kinds, ", ") + ")"
}
