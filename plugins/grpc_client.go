package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// grpcClient is the host's view of a backend: a registry.Registry whose methods are gRPC calls.
type grpcClient struct {
	rpc pb.RegistryClient
	// transportErr explains an error that did not come from the backend (the plugin process
	// crashed or closed the connection). It defaults to returning the error unchanged.
	transportErr func(error) error
}

func (c *grpcClient) convert(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	// The backend's own explanation wins (it names the server that did not answer), also when
	// the caller's deadline has passed meanwhile.
	domainErr, fromBackend := fromStatus(err)
	if fromBackend {
		return domainErr
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if c.transportErr == nil {
		return domainErr
	}
	// The server side of a call can see the propagated deadline expire a moment before the
	// client does: that is still the caller's deadline, not a broken plugin.
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	}
	return c.transportErr(err)
}

func (c *grpcClient) Info(ctx context.Context) (registry.Info, error) {
	resp, err := c.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return registry.Info{}, c.convert(ctx, err)
	}
	return infoFromProto(resp), nil
}

// configure sends the backend its config section.
func (c *grpcClient) configure(ctx context.Context, section map[string]any) error {
	raw, err := json.Marshal(section)
	if err != nil {
		return fmt.Errorf("encode backend config: %w", err)
	}
	_, err = c.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: raw})
	return c.convert(ctx, err)
}

func (c *grpcClient) Register(ctx context.Context, inst registry.Instance) error {
	_, err := c.rpc.Register(ctx, &pb.RegisterRequest{Instance: instanceToProto(inst)})
	return c.convert(ctx, err)
}

func (c *grpcClient) Deregister(ctx context.Context, id string) error {
	_, err := c.rpc.Deregister(ctx, &pb.DeregisterRequest{Id: id})
	return c.convert(ctx, err)
}

func (c *grpcClient) Heartbeat(ctx context.Context, id string) error {
	_, err := c.rpc.Heartbeat(ctx, &pb.HeartbeatRequest{Id: id})
	return c.convert(ctx, err)
}

func (c *grpcClient) Instances(ctx context.Context, q registry.Query) ([]registry.Instance, error) {
	resp, err := c.rpc.Instances(ctx, &pb.InstancesRequest{
		Name: q.Name, Tags: q.Tags, HealthyOnly: q.HealthyOnly, IncludeWarning: q.IncludeWarning, Pick: q.Pick,
	})
	if err != nil {
		return nil, c.convert(ctx, err)
	}
	return instancesFromProto(resp.GetInstances()), nil
}

func (c *grpcClient) Services(ctx context.Context) ([]registry.Service, error) {
	resp, err := c.rpc.Services(ctx, &pb.ServicesRequest{})
	if err != nil {
		return nil, c.convert(ctx, err)
	}
	return servicesFromProto(resp.GetServices()), nil
}

func (c *grpcClient) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Watch(ctx, &pb.WatchRequest{Name: req.Name, Index: req.Index})
	if err != nil {
		return c.convert(ctx, err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("watch ended by the backend: %w", registry.ErrUnavailable)
		}
		if err != nil {
			return c.convert(ctx, err)
		}
		if err := fn(registry.Event{Index: ev.GetIndex(), Instances: instancesFromProto(ev.GetInstances())}); err != nil {
			return err
		}
	}
}

func (c *grpcClient) ClusterStatus(ctx context.Context) (registry.ClusterStatus, error) {
	resp, err := c.rpc.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
	if err != nil {
		return registry.ClusterStatus{}, c.convert(ctx, err)
	}
	return clusterFromProto(resp), nil
}

// Close does nothing: the process behind the connection belongs to the Client that made it.
func (c *grpcClient) Close() error { return nil }

var _ registry.Registry = (*grpcClient)(nil)
