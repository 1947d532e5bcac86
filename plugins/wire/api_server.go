package wire

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
	"github.com/sdctl/sdctl/registry"
)

// Server answers the protocol's calls with a Backend, whatever carries them: go-plugin's gRPC
// (package plugins) or a warm backend's connections (Serve). Its errors are domain errors.
// The registry exists once Configure has succeeded.
type Server struct {
	backend Backend
	log     *slog.Logger
	// Minor is the protocol minor version reported by Info (ProtocolMinor unless a test plays
	// an older backend).
	Minor uint32
	// Warm is set in a warm backend, which many commands share: Configure then sets the
	// registry once, and later calls with the same section are accepted as they are.
	Warm bool
	// OnWatch, when set, is called as a Watch starts: a process that serves one stays up.
	OnWatch func()

	mu  sync.Mutex
	reg registry.Registry
	// configured is the section the registry was built from (warm backends only).
	configured []byte
	// configuring serialises Configure in a warm backend.
	configuring sync.Mutex
}

// NewServer returns a Server of b, which logs to log.
func NewServer(b Backend, log *slog.Logger) *Server {
	return &Server{backend: b, log: log, Minor: ProtocolMinor}
}

func (s *Server) registry() (registry.Registry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg == nil {
		return nil, errors.New("backend is not configured: Configure must come first")
	}
	return s.reg, nil
}

// Close releases the configured registry, if any.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg == nil {
		return nil
	}
	err := s.reg.Close()
	s.reg = nil
	return err
}

func (s *Server) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	resp := infoToProto(s.backend.Info())
	resp.ProtocolMinor = s.Minor
	if sum := req.GetConfigSha256(); s.Warm && len(sum) == sha256.Size {
		s.mu.Lock()
		if s.reg != nil {
			have := sha256.Sum256(s.configured)
			resp.Configured = bytes.Equal(have[:], sum)
		}
		s.mu.Unlock()
	}
	return resp, nil
}

func (s *Server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	section := map[string]any{}
	if raw := req.GetConfigJson(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &section); err != nil {
			return nil, fmt.Errorf("%w: config section is not a JSON object: %v", registry.ErrInvalid, err)
		}
	}
	if s.Warm {
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

func (s *Server) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
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
func (s *Server) RegisterBatch(ctx context.Context, req *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
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

func (s *Server) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.DeregisterResponse{}, reg.Deregister(ctx, req.GetId())
}

func (s *Server) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	reg, err := s.registry()
	if err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{}, reg.Heartbeat(ctx, req.GetId())
}

func (s *Server) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
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

func (s *Server) Services(ctx context.Context, _ *pb.ServicesRequest) (*pb.ServicesResponse, error) {
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

func (s *Server) Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
	if s.OnWatch != nil {
		s.OnWatch()
	}
	reg, err := s.registry()
	if err != nil {
		return err
	}
	return reg.Watch(ctx, registry.WatchRequest{Name: req.GetName(), Index: req.GetIndex()}, func(ev registry.Event) error {
		return send(&pb.WatchEvent{Index: ev.Index, Instances: instancesToProto(ev.Instances)})
	})
}

func (s *Server) ClusterStatus(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
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

var _ API = (*Server)(nil)
