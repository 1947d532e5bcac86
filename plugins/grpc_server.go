package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// server exposes a Backend over gRPC. The registry exists once Configure has succeeded.
type server struct {
	pb.UnimplementedRegistryServer
	backend Backend
	log     *slog.Logger
	// minor is the protocol minor version reported by Info.
	minor uint32
	// warm is set in a warm backend, which many commands share: Configure then sets the
	// registry once, and later calls with the same section are accepted as they are.
	warm bool

	mu  sync.Mutex
	reg registry.Registry
	// configured is the section the registry was built from (warm backends only).
	configured []byte
	// configuring serialises Configure in a warm backend.
	configuring sync.Mutex
}

func newServer(b Backend, log *slog.Logger) *server {
	return &server{backend: b, log: log, minor: ProtocolMinor}
}

func (s *server) registry() (registry.Registry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg == nil {
		return nil, status.Error(codes.FailedPrecondition, "backend is not configured: Configure must come first")
	}
	return s.reg, nil
}

// close releases the configured registry, if any.
func (s *server) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg == nil {
		return nil
	}
	err := s.reg.Close()
	s.reg = nil
	return err
}

func (s *server) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	resp := infoToProto(s.backend.Info())
	resp.ProtocolMinor = s.minor
	if sum := req.GetConfigSha256(); s.warm && len(sum) == sha256.Size {
		s.mu.Lock()
		if s.reg != nil {
			have := sha256.Sum256(s.configured)
			resp.Configured = bytes.Equal(have[:], sum)
		}
		s.mu.Unlock()
	}
	return resp, nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	section := map[string]any{}
	if raw := req.GetConfigJson(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &section); err != nil {
			return nil, toStatus(fmt.Errorf("%w: config section is not a JSON object: %v", registry.ErrInvalid, err))
		}
	}
	if s.warm {
		s.configuring.Lock()
		defer s.configuring.Unlock()
		s.mu.Lock()
		done, same := s.reg != nil, bytes.Equal(s.configured, req.GetConfigJson())
		s.mu.Unlock()
		if done && same {
			return &pb.ConfigureResponse{}, nil
		}
		if done {
			return nil, status.Error(codes.FailedPrecondition, "this warm backend serves another configuration")
		}
	}
	reg, err := s.backend.New(ctx, section, s.log)
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	old := s.reg
	s.reg = reg
	s.configured = bytes.Clone(req.GetConfigJson())
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *server) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	if req.GetInstance() == nil {
		return nil, toStatus(registry.Invalidf("instance", "missing"))
	}
	return &pb.RegisterResponse{}, toStatus(reg.Register(ctx, instanceFromProto(req.GetInstance())))
}

// RegisterBatch hands the instances to the backend's batch call, or registers them one by one
// when it has none.
func (s *server) RegisterBatch(ctx context.Context, req *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	insts := make([]registry.Instance, len(req.GetInstances()))
	for i, inst := range req.GetInstances() {
		if inst == nil {
			return nil, toStatus(registry.Invalidf("instances", "instance %d is missing", i+1))
		}
		insts[i] = instanceFromProto(inst)
	}
	if br, ok := reg.(registry.BatchRegisterer); ok {
		return &pb.RegisterBatchResponse{}, toStatus(br.RegisterBatch(ctx, insts))
	}
	for _, inst := range insts {
		if err := reg.Register(ctx, inst); err != nil {
			return nil, toStatus(fmt.Errorf("register %s: %w", inst.ID, err))
		}
	}
	return &pb.RegisterBatchResponse{}, nil
}

func (s *server) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.DeregisterResponse{}, toStatus(reg.Deregister(ctx, req.GetId()))
}

func (s *server) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{}, toStatus(reg.Heartbeat(ctx, req.GetId()))
}

func (s *server) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	list, err := reg.Instances(ctx, registry.Query{
		Name: req.GetName(), Tags: req.GetTags(), HealthyOnly: req.GetHealthyOnly(), IncludeWarning: req.GetIncludeWarning(),
		Pick: req.Pick,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InstancesResponse{Instances: instancesToProto(list)}, nil
}

func (s *server) Services(ctx context.Context, _ *pb.ServicesRequest) (*pb.ServicesResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	list, err := reg.Services(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ServicesResponse{Services: servicesToProto(list)}, nil
}

func (s *server) Watch(req *pb.WatchRequest, stream pb.Registry_WatchServer) error {
	LimitMemory() // a process that serves a watch stays up
	reg, err := s.registry()
	if err != nil {
		return err
	}
	err = reg.Watch(stream.Context(), registry.WatchRequest{Name: req.GetName(), Index: req.GetIndex()}, func(ev registry.Event) error {
		return stream.Send(&pb.WatchEvent{Index: ev.Index, Instances: instancesToProto(ev.Instances)})
	})
	return toStatus(err)
}

func (s *server) ClusterStatus(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	st, err := reg.ClusterStatus(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return clusterToProto(st), nil
}
