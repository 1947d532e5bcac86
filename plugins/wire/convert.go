package wire

import (
	"time"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// This file translates between protocol messages and domain types, and does nothing else.

func instanceToProto(in registry.Instance) *pb.Instance {
	out := &pb.Instance{
		Id:      in.ID,
		Name:    in.Name,
		Address: in.Address,
		Port:    int32(in.Port),
		Tags:    in.Tags,
		Meta:    in.Meta,
		Weight:  int32(in.Weight),
		Drain:   in.Drain,
		TtlNs:   int64(in.TTL),
		Health:  string(in.Health),
		Node:    in.Node,
	}
	if !in.Expires.IsZero() {
		out.ExpiresUnixNs = in.Expires.UnixNano()
	}
	for _, c := range in.Checks {
		out.Checks = append(out.Checks, checkToProto(c))
	}
	return out
}

func instanceFromProto(in *pb.Instance) registry.Instance {
	out := registry.Instance{
		ID:      in.GetId(),
		Name:    in.GetName(),
		Address: in.GetAddress(),
		Port:    int(in.GetPort()),
		Tags:    in.GetTags(),
		Meta:    in.GetMeta(),
		Weight:  int(in.GetWeight()),
		Drain:   in.GetDrain(),
		TTL:     time.Duration(in.GetTtlNs()),
		Health:  registry.Health(in.GetHealth()),
		Node:    in.GetNode(),
	}
	if ns := in.GetExpiresUnixNs(); ns != 0 {
		out.Expires = time.Unix(0, ns).UTC()
	}
	for _, c := range in.GetChecks() {
		out.Checks = append(out.Checks, checkFromProto(c))
	}
	return out
}

func instancesToProto(in []registry.Instance) []*pb.Instance {
	out := make([]*pb.Instance, len(in))
	for i := range in {
		out[i] = instanceToProto(in[i])
	}
	return out
}

func instancesFromProto(in []*pb.Instance) []registry.Instance {
	out := make([]registry.Instance, len(in))
	for i := range in {
		out[i] = instanceFromProto(in[i])
	}
	return out
}

func checkToProto(c registry.Check) *pb.Check {
	out := &pb.Check{
		Kind:              string(c.Kind),
		Target:            c.Target,
		IntervalNs:        int64(c.Interval),
		TimeoutNs:         int64(c.Timeout),
		DeregisterAfterNs: int64(c.DeregisterAfter),
		Method:            c.Method,
		TlsSkipVerify:     c.TLSSkipVerify,
		InitialStatus:     string(c.InitialStatus),
		GrpcUseTls:        c.GRPCUseTLS,
	}
	if len(c.Header) > 0 {
		out.Header = make(map[string]*pb.HeaderValues, len(c.Header))
		for k, v := range c.Header {
			out.Header[k] = &pb.HeaderValues{Values: v}
		}
	}
	return out
}

func checkFromProto(c *pb.Check) registry.Check {
	out := registry.Check{
		Kind:            registry.CheckKind(c.GetKind()),
		Target:          c.GetTarget(),
		Interval:        time.Duration(c.GetIntervalNs()),
		Timeout:         time.Duration(c.GetTimeoutNs()),
		DeregisterAfter: time.Duration(c.GetDeregisterAfterNs()),
		Method:          c.GetMethod(),
		TLSSkipVerify:   c.GetTlsSkipVerify(),
		InitialStatus:   registry.Health(c.GetInitialStatus()),
		GRPCUseTLS:      c.GetGrpcUseTls(),
	}
	if h := c.GetHeader(); len(h) > 0 {
		out.Header = make(map[string][]string, len(h))
		for k, v := range h {
			out.Header[k] = v.GetValues()
		}
	}
	return out
}

func servicesToProto(in []registry.Service) []*pb.Service {
	out := make([]*pb.Service, len(in))
	for i, s := range in {
		out[i] = &pb.Service{Name: s.Name, Instances: int32(s.Instances), Passing: int32(s.Passing), Tags: s.Tags}
	}
	return out
}

func servicesFromProto(in []*pb.Service) []registry.Service {
	out := make([]registry.Service, len(in))
	for i, s := range in {
		out[i] = registry.Service{Name: s.GetName(), Instances: int(s.GetInstances()), Passing: int(s.GetPassing()), Tags: s.GetTags()}
	}
	return out
}

func clusterToProto(in registry.ClusterStatus) *pb.ClusterStatusResponse {
	out := &pb.ClusterStatusResponse{Backend: in.Backend, Leader: in.Leader, Notes: in.Notes}
	for _, m := range in.Members {
		out.Members = append(out.Members, &pb.Member{
			Name: m.Name, Address: m.Address, Role: m.Role, Leader: m.Leader,
			Health: m.Health, Version: m.Version, Details: m.Details,
		})
	}
	return out
}

func clusterFromProto(in *pb.ClusterStatusResponse) registry.ClusterStatus {
	out := registry.ClusterStatus{Backend: in.GetBackend(), Leader: in.GetLeader(), Notes: in.GetNotes()}
	for _, m := range in.GetMembers() {
		out.Members = append(out.Members, registry.Member{
			Name: m.GetName(), Address: m.GetAddress(), Role: m.GetRole(), Leader: m.GetLeader(),
			Health: m.GetHealth(), Version: m.GetVersion(), Details: m.GetDetails(),
		})
	}
	return out
}

func infoToProto(in registry.Info) *pb.InfoResponse {
	out := &pb.InfoResponse{Name: in.Name, Version: in.Version}
	for _, c := range in.Capabilities {
		out.Capabilities = append(out.Capabilities, string(c))
	}
	for _, o := range in.Options {
		out.Options = append(out.Options, &pb.Option{
			Key: o.Key, Default: o.Default, Help: o.Help, Secret: o.Secret, Env: o.Env, List: o.List,
		})
	}
	return out
}

func infoFromProto(in *pb.InfoResponse) registry.Info {
	out := registry.Info{Name: in.GetName(), Version: in.GetVersion()}
	for _, c := range in.GetCapabilities() {
		out.Capabilities = append(out.Capabilities, registry.Capability(c))
	}
	for _, o := range in.GetOptions() {
		out.Options = append(out.Options, registry.Option{
			Key: o.GetKey(), Default: o.GetDefault(), Help: o.GetHelp(), Secret: o.GetSecret(), Env: o.GetEnv(), List: o.GetList(),
		})
	}
	return out
}
