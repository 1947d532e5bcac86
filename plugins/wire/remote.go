package wire

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// Remote is the host's view of a backend: a registry.Registry whose methods are the protocol's
// calls, over go-plugin's gRPC (package plugins) or a warm backend's connection (Client).
type Remote struct {
	rpc API
	// minor is the protocol minor version agreed in Info (-1 before Info was called); batch
	// is whether RegisterBatch can be sent: minor 1 or later, and the backend advertises it.
	minor atomic.Int32
	batch atomic.Bool
	// info is the backend's answer to Info, which does not change while it runs: later calls
	// (register checks capabilities after the host configured the backend) cost no round trip.
	info atomic.Pointer[registry.Info]
	// TransportErr explains an error that did not come from the backend (the plugin process
	// crashed or closed the connection). Nil returns the error unchanged.
	TransportErr func(error) error
}

func (c *Remote) convert(ctx context.Context, err error) error {
	// The backend's own explanation wins (it names the server that did not answer), also when
	// the caller's deadline has passed meanwhile.
	var te *TransportError
	if err == nil || !errors.As(err, &te) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if c.TransportErr == nil {
		return te.Err
	}
	return c.TransportErr(te.Err)
}

func (c *Remote) Info(ctx context.Context) (registry.Info, error) {
	if info := c.info.Load(); info != nil {
		return *info, nil
	}
	if _, err := c.info1(ctx, nil); err != nil {
		return registry.Info{}, err
	}
	return *c.info.Load(), nil
}

// ConfiguredWith calls Info (and keeps its answer) and reports whether a warm backend is
// configured with the config section raw already.
func (c *Remote) ConfiguredWith(ctx context.Context, raw []byte) (bool, error) {
	sum := sha256.Sum256(raw)
	resp, err := c.info1(ctx, sum[:])
	if err != nil {
		return false, err
	}
	return resp.GetConfigured(), nil
}

// info1 asks the backend for its Info and records it.
func (c *Remote) info1(ctx context.Context, configSum []byte) (*pb.InfoResponse, error) {
	resp, err := c.rpc.Info(ctx, &pb.InfoRequest{ProtocolMinor: ProtocolMinor, ConfigSha256: configSum})
	if err != nil {
		return nil, c.convert(ctx, err)
	}
	info := infoFromProto(resp)
	minor := min(resp.GetProtocolMinor(), ProtocolMinor)
	c.minor.Store(int32(minor))
	c.batch.Store(minor >= 1 && info.Has(registry.CapBatchRegister))
	c.info.Store(&info)
	return resp, nil
}

// canBatch reports whether RegisterBatch goes to the backend in one call, asking the backend
// first when Info has not been called yet.
func (c *Remote) canBatch(ctx context.Context) (bool, error) {
	if c.minor.Load() < 0 {
		if _, err := c.Info(ctx); err != nil {
			return false, err
		}
	}
	return c.batch.Load(), nil
}

// RegisterBatch registers insts in one call when the backend supports it (protocol 1.1 and the
// batch-register capability), else one by one under the same ctx.
func (c *Remote) RegisterBatch(ctx context.Context, insts []registry.Instance) error {
	batch, err := c.canBatch(ctx)
	if err != nil {
		return err
	}
	if !batch {
		for _, inst := range insts {
			if err := c.Register(ctx, inst); err != nil {
				return fmt.Errorf("register %s: %w", inst.ID, err)
			}
		}
		return nil
	}
	req := &pb.RegisterBatchRequest{Instances: make([]*pb.Instance, len(insts))}
	for i, inst := range insts {
		req.Instances[i] = instanceToProto(inst)
	}
	_, err = c.rpc.RegisterBatch(ctx, req)
	return c.convert(ctx, err)
}

// Configure sends the backend its config section.
func (c *Remote) Configure(ctx context.Context, section map[string]any) error {
	raw, err := EncodeSection(section)
	if err != nil {
		return err
	}
	return c.ConfigureRaw(ctx, raw)
}

// ConfigureRaw sends the backend its config section, encoded by EncodeSection.
func (c *Remote) ConfigureRaw(ctx context.Context, raw []byte) error {
	_, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: raw})
	return c.convert(ctx, err)
}

// EncodeSection is the JSON form of a config section that Configure carries.
func EncodeSection(section map[string]any) ([]byte, error) {
	raw, err := json.Marshal(section)
	if err != nil {
		return nil, fmt.Errorf("encode backend config: %w", err)
	}
	return raw, nil
}

func (c *Remote) Register(ctx context.Context, inst registry.Instance) error {
	_, err := c.rpc.Register(ctx, &pb.RegisterRequest{Instance: instanceToProto(inst)})
	return c.convert(ctx, err)
}

func (c *Remote) Deregister(ctx context.Context, id string) error {
	_, err := c.rpc.Deregister(ctx, &pb.DeregisterRequest{Id: id})
	return c.convert(ctx, err)
}

func (c *Remote) Heartbeat(ctx context.Context, id string) error {
	_, err := c.rpc.Heartbeat(ctx, &pb.HeartbeatRequest{Id: id})
	return c.convert(ctx, err)
}

func (c *Remote) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	resp, err := c.rpc.Instances(ctx, &pb.InstancesRequest{
		Name: q.Name, Tags: q.Tags, HealthyOnly: q.HealthyOnly, IncludeWarning: q.IncludeWarning, Pick: q.Pick,
	})
	if err != nil {
		return nil, c.convert(ctx, err)
	}
	return instancesFromProto(resp.GetInstances()), nil
}

func (c *Remote) Services(ctx context.Context) ([]registry.Service, error) {
	resp, err := c.rpc.Services(ctx, &pb.ServicesRequest{})
	if err != nil {
		return nil, c.convert(ctx, err)
	}
	return servicesFromProto(resp.GetServices()), nil
}

func (c *Remote) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	var fnErr error
	err := c.rpc.Watch(ctx, &pb.WatchRequest{Name: req.Name, Index: req.Index}, func(ev *pb.WatchEvent) error {
		fnErr = fn(registry.Event{Index: ev.GetIndex(), Instances: instancesFromProto(ev.GetInstances())})
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err == nil:
		return fmt.Errorf("watch ended by the backend: %w", registry.ErrUnavailable)
	}
	return c.convert(ctx, err)
}

func (c *Remote) ClusterStatus(ctx context.Context) (registry.ClusterStatus, error) {
	resp, err := c.rpc.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
	if err != nil {
		return registry.ClusterStatus{}, c.convert(ctx, err)
	}
	return clusterFromProto(resp), nil
}

// Close does nothing: the process behind the connection belongs to the Client that made it.
func (c *Remote) Close() error { return nil }

var (
	_ registry.Registry        = (*Remote)(nil)
	_ registry.BatchRegisterer = (*Remote)(nil)
)

// NewRemote returns the registry whose calls go through api.
func NewRemote(api API) *Remote {
	c := &Remote{rpc: api}
	c.minor.Store(-1)
	return c
}

// API is the connection the calls go through.
func (c *Remote) API() API { return c.rpc }

// Batches reports whether RegisterBatch sends its instances in one call. It is known once Info
// has been called, and false before.
func (c *Remote) Batches() bool { return c.batch.Load() }

// Minor is the minor version of protocol 1 agreed with the backend in Info (-1 before Info was
// called).
func (c *Remote) Minor() int { return int(c.minor.Load()) }
