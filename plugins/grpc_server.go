package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// server answers the protocol's calls with a Backend, whatever carries them: go-plugin's gRPC
// (grpcServer) or a warm backend's connections (wire.Serve). Its errors are domain errors.
// The registry exists once Configure has succeeded.
type server struct {
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
		return nil, errors.New("backend is not configured: Configure must come first")
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
			return nil, fmt.Errorf("%w: config section is not a JSON object: %v", registry.ErrInvalid, err)
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
			return nil, errors.New("this warm backend serves another configuration")
		}
	}
	reg, err := s.backend.New(ctx, section, s.log)
	if err != nil {
		return nil, err
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
		return nil, registry.Invalidf("instance", "missing")
	}
	return &pb.RegisterResponse{}, reg.Register(ctx, instanceFromProto(req.GetInstance()))
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
			return nil, registry.Invalidf("instances", "instance %d is missing", i+1)
		}
		insts[i] = instanceFromProto(inst)
	}
	if br, ok := reg.(registry.BatchRegisterer); ok {
		return &pb.RegisterBatchResponse{}, br.RegisterBatch(ctx, insts)
	}
	for _, inst := range insts {
		if err := reg.Register(ctx, inst); err != nil {
			return nil, fmt.Errorf("register %s: %w", inst.ID, err)
		}
	}
	return &pb.RegisterBatchResponse{}, nil
}

func (s *server) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.DeregisterResponse{}, reg.Deregister(ctx, req.GetId())
}

func (s *server) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{}, reg.Heartbeat(ctx, req.GetId())
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
		return nil, err
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
		return nil, err
	}
	return &pb.ServicesResponse{Services: servicesToProto(list)}, nil
}

func (s *server) Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
	LimitMemory() // a process that serves a watch stays up
	reg, err := s.registry()
	if err != nil {
		return err
	}
	return reg.Watch(ctx, registry.WatchRequest{Name: req.GetName(), Index: req.GetIndex()}, func(ev registry.Event) error {
		return send(&pb.WatchEvent{Index: ev.Index, Instances: instancesToProto(ev.Instances)})
	})
}

func (s *server) ClusterStatus(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	st, err := reg.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	return clusterToProto(st), nil
}

var _ wire.API = (*server)(nil)
