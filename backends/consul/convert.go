package consul

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

// Consul's JSON for writes, as consul/api types it.
type (
	serviceRegistration = api.AgentServiceRegistration
	checkDefinition     = api.AgentServiceCheck
)

// serviceEntry is one entry of /v1/health/service/<name>, reduced to the fields sdctl reads.
// consul/api's ServiceEntry also decodes the node's and the service's tagged addresses and
// metadata, the proxy and Connect settings and every check's definition and output: about twice
// the memory and seven times the allocations for the same answer. `sdctl watch` reads every
// instance after each change, so this is most of what a Consul backend process allocates.
type serviceEntry struct {
	Node    *entryNode
	Service *entryService
	Checks  []*healthCheck
}

type entryNode struct {
	Node    string
	Address string
}

type entryService struct {
	ID      string
	Service string
	Tags    []string
	Address string
	Port    int
	Meta    map[string]string
	Weights api.AgentWeights
}

type healthCheck struct {
	CheckID   string
	ServiceID string
	Status    string
	Notes     string
	Type      string
}

// leanEntries reduces consul/api's entries to serviceEntry.
func leanEntries(in []*api.ServiceEntry) []*serviceEntry {
	out := make([]*serviceEntry, 0, len(in))
	for _, e := range in {
		if e == nil {
			continue
		}
		l := &serviceEntry{}
		if e.Node != nil {
			l.Node = &entryNode{Node: e.Node.Node, Address: e.Node.Address}
		}
		if s := e.Service; s != nil {
			l.Service = &entryService{ID: s.ID, Service: s.Service, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta, Weights: s.Weights}
		}
		for _, c := range e.Checks {
			if c != nil {
				l.Checks = append(l.Checks, &healthCheck{CheckID: c.CheckID, ServiceID: c.ServiceID, Status: c.Status, Notes: c.Notes, Type: c.Type})
			}
		}
		out = append(out, l)
	}
	return out
}

// Consul's check statuses.
const (
	statusPassing     = "passing"
	statusWarning     = "warning"
	statusCritical    = "critical"
	statusMaintenance = "maintenance"
)

// Check IDs Consul gives its maintenance-mode checks.
const (
	serviceMaintenancePrefix = "_service_maintenance:"
	nodeMaintenance          = "_node_maintenance"
)

// MetaDrain marks a drained instance (registry.Instance.Drain) in its Consul metadata: Consul's
// weights start at 1. sdctl reads it back as Drain and hides the key.
const MetaDrain = "sdctl-drain"

// ttlCheckID is the ID of the TTL check sdctl registers with an instance: the ID Consul gives
// a service's single embedded check, which other clients (go-micro, Registrator) also pass.
func ttlCheckID(serviceID string) string { return "service:" + serviceID }

// ttlNote records the TTL in the check's notes: Consul keeps a TTL check's duration to itself
// (the catalog has no field for it), and Instance.TTL must survive a round trip.
func ttlNote(ttl time.Duration) string {
	return "ttl=" + ttl.String() + " (sdctl heartbeats pass this check)"
}

// parseTTLNote is the inverse of ttlNote; zero when notes hold no TTL.
func parseTTLNote(notes string) time.Duration {
	for _, f := range strings.Fields(notes) {
		if v, ok := strings.CutPrefix(f, "ttl="); ok {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return d
			}
		}
	}
	return 0
}

// declaredCheckID is the ID of the TTL check that carries an instance's declared health
// (registry.Instance.Health), beside the TTL check service:<id> and the checks service:<id>:<n>.
func declaredCheckID(serviceID string) string { return ttlCheckID(serviceID) + ":declared" }

// declaredCheckName names the declared-health check in Consul's UI and API.
const declaredCheckName = "Declared health"

// declaredTTL is the TTL of the declared-health check. Consul lets clients set the status of
// TTL checks only, so the check is one, but nothing heartbeats it: sdctl sets its status on
// every registration, and the TTL is long enough never to run out in practice (ten years).
const declaredTTL = 87600 * time.Hour

// declaredStatus is the Consul status of the declared-health check. Consul checks have no
// maintenance status, and its service maintenance mode is an operator's switch that every
// registration (replace-existing-checks) would drop and sdctl would have to set again. So
// maintenance is critical to Consul (out of DNS and ?passing, as maintenance is), and the
// check's notes say maintenance, from which aggregate reports it.
func declaredStatus(h registry.Health) string {
	if h == registry.HealthMaintenance {
		return statusCritical
	}
	return string(h)
}

// declaredNote records the declared health in the check's notes, which Consul shows and
// returns with the check: "declared=maintenance (...)".
func declaredNote(h registry.Health) string {
	return "declared=" + string(h) + " (set by sdctl from the registration's declared health; registering the instance again changes or removes this check)"
}

// parseDeclaredNote is the inverse of declaredNote; empty when notes declare nothing.
func parseDeclaredNote(notes string) registry.Health {
	for _, f := range strings.Fields(notes) {
		if v, ok := strings.CutPrefix(f, "declared="); ok {
			return registry.Health(v)
		}
	}
	return ""
}

// registration translates an instance into an agent registration. Checks get explicit IDs:
// service:<id> for the TTL check, service:<id>:<n> for the others, n from 1, as Consul numbers
// a service's embedded checks itself, and service:<id>:declared for a declared health.
func registration(inst registry.Instance) (*serviceRegistration, error) {
	reg := &serviceRegistration{
		ID:      inst.ID,
		Name:    inst.Name,
		Tags:    inst.Tags,
		Address: inst.Address,
		Port:    inst.Port,
		Meta:    inst.Meta,
		// Consul DNS uses Warning for instances in the warning state; 1 is its default.
		Weights: &api.AgentWeights{Passing: max(inst.Weight, 1), Warning: 1},
	}
	if inst.Drain {
		// Consul's weights start at 1, so a drained instance is marked in its metadata.
		reg.Meta = make(map[string]string, len(inst.Meta)+1)
		maps.Copy(reg.Meta, inst.Meta)
		reg.Meta[MetaDrain] = "true"
	}
	if inst.TTL > 0 {
		ttl := &checkDefinition{
			CheckID: ttlCheckID(inst.ID),
			Name:    "TTL of " + inst.ID,
			Notes:   ttlNote(inst.TTL),
			TTL:     inst.TTL.String(),
			// The instance is alive now: it is registering.
			Status: statusPassing,
		}
		for _, c := range inst.Checks {
			if c.Kind == registry.CheckTTL {
				if err := registry.ValidateCheck(c); err != nil {
					return reg, err
				}
				ttl.Status = cmp.Or(string(c.InitialStatus), statusPassing)
				if c.DeregisterAfter > 0 {
					ttl.DeregisterCriticalServiceAfter = c.DeregisterAfter.String()
				}
			}
		}
		reg.Checks = append(reg.Checks, ttl)
	}
	n := 0
	for _, c := range inst.Checks {
		if c.Kind == registry.CheckTTL {
			continue // folded into the TTL check above
		}
		def, err := checkDef(c)
		if err != nil {
			return reg, err
		}
		n++
		def.CheckID = fmt.Sprintf("%s:%d", ttlCheckID(inst.ID), n)
		def.Name = fmt.Sprintf("%s check of %s", c.Kind, inst.ID)
		reg.Checks = append(reg.Checks, def)
	}
	if inst.Health != "" {
		if err := registry.ValidateHealth(inst.Health); err != nil {
			return reg, err
		}
		reg.Checks = append(reg.Checks, &checkDefinition{
			CheckID: declaredCheckID(inst.ID),
			Name:    declaredCheckName,
			Notes:   declaredNote(inst.Health),
			TTL:     declaredTTL.String(),
			// The status of a new check. Consul keeps the status of a check that already
			// exists, so Register also sets it with /v1/agent/check/update.
			Status: declaredStatus(inst.Health),
		})
	}
	return reg, nil
}

// defaultInterval is used for checks registered without one; Consul requires an interval.
const defaultInterval = 10 * time.Second

// checkDef translates one health check. Script checks are refused: Consul runs them only
// with enable_script_checks, which its documentation flags as a remote code execution risk.
func checkDef(c registry.Check) (*checkDefinition, error) {
	if err := registry.ValidateCheck(c); err != nil {
		return nil, err
	}
	def := &checkDefinition{Status: string(c.InitialStatus)}
	switch c.Kind {
	case registry.CheckHTTP:
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return def, registry.Invalidf("check", "http check target %q is not an http:// or https:// URL", c.Target)
		}
		def.HTTP = c.Target
		def.Method = strings.ToUpper(c.Method)
		def.Header = c.Header
		def.TLSSkipVerify = c.TLSSkipVerify
	case registry.CheckTCP:
		if _, _, err := net.SplitHostPort(c.Target); err != nil {
			return def, registry.Invalidf("check", "tcp check target %q is not HOST:PORT", c.Target)
		}
		def.TCP = c.Target
	case registry.CheckGRPC:
		// HOST:PORT, optionally followed by /SERVICE for the health protocol's service name.
		hostport, _, _ := strings.Cut(c.Target, "/")
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return def, registry.Invalidf("check", "grpc check target %q is not HOST:PORT[/SERVICE]", c.Target)
		}
		def.GRPC = c.Target
		def.GRPCUseTLS = c.GRPCUseTLS
		def.TLSSkipVerify = c.TLSSkipVerify // Consul applies it to a gRPC check over TLS
	case registry.CheckScript:
		return def, registry.Errorf(registry.ErrUnsupported,
			"consul: script checks are not supported: Consul runs them only with enable_script_checks, a remote code execution risk; use an http, tcp or grpc check, or --ttl with --keepalive")
	}
	def.Interval = cmp.Or(c.Interval, defaultInterval).String()
	if c.Timeout > 0 {
		def.Timeout = c.Timeout.String()
	}
	if c.DeregisterAfter > 0 {
		def.DeregisterCriticalServiceAfter = c.DeregisterAfter.String()
	}
	return def, nil
}

// aggregate computes an instance's health from its checks (node checks included) the way
// Consul's HealthChecks.AggregatedStatus does: maintenance over critical over warning. A
// critical declared-health check whose notes declare maintenance counts as maintenance.
func aggregate(checks []*healthCheck) registry.Health {
	var maint, critical, warning bool
	for _, c := range checks {
		if c == nil {
			continue
		}
		if c.CheckID == nodeMaintenance || strings.HasPrefix(c.CheckID, serviceMaintenancePrefix) {
			maint = true
			continue
		}
		if c.Status == statusCritical && c.ServiceID != "" && c.CheckID == declaredCheckID(c.ServiceID) &&
			parseDeclaredNote(c.Notes) == registry.HealthMaintenance {
			maint = true
			continue
		}
		switch c.Status {
		case statusPassing:
		case statusWarning:
			warning = true
		case statusMaintenance:
			maint = true
		default: // critical, or a status this version does not know
			critical = true
		}
	}
	switch {
	case maint:
		return registry.HealthMaintenance
	case critical:
		return registry.HealthCritical
	case warning:
		return registry.HealthWarning
	}
	return registry.HealthPassing
}

// instance translates a health entry. The address falls back to the node's, as Consul DNS
// does; the weight is the one Consul DNS would use for the instance's state.
func instance(e *serviceEntry) registry.Instance {
	s, node := e.Service, e.Node
	if s == nil {
		s = &entryService{}
	}
	if node == nil {
		node = &entryNode{}
	}
	inst := registry.Instance{
		ID:      s.ID,
		Name:    s.Service,
		Address: cmp.Or(s.Address, node.Address),
		Port:    s.Port,
		Tags:    s.Tags,
		Meta:    s.Meta,
		Weight:  s.Weights.Passing,
		Health:  aggregate(e.Checks),
		Node:    node.Node,
	}
	if len(inst.Tags) == 0 {
		inst.Tags = nil
	}
	if len(inst.Meta) == 0 {
		inst.Meta = nil
	}
	if inst.Health == registry.HealthWarning && s.Weights.Warning > 0 {
		inst.Weight = s.Weights.Warning
	}
	if inst.Meta[MetaDrain] == "true" {
		inst.Drain, inst.Weight = true, 0
		meta := maps.Clone(inst.Meta)
		delete(meta, MetaDrain)
		inst.Meta = meta
		if len(meta) == 0 {
			inst.Meta = nil
		}
	}
	for _, c := range e.Checks {
		if c != nil && c.CheckID == ttlCheckID(s.ID) && c.Type == "ttl" {
			inst.TTL = parseTTLNote(c.Notes)
		}
	}
	return inst
}

// instances translates entries, keeps those matching q and sorts them by ID (then node, for
// an ID registered on two agents).
func instances(entries []*serviceEntry, q registry.Query) []registry.Instance {
	out := make([]registry.Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil {
			continue
		}
		if inst := instance(e); q.Matches(inst) {
			out = append(out, inst)
		}
	}
	slices.SortFunc(out, func(a, b registry.Instance) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Node, b.Node))
	})
	return out
}
