package plugins

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/plugins/proto/rpc"
	"github.com/sdctl/sdctl/plugins/wire"
)

// This file carries the protocol's calls over go-plugin's gRPC connection, the transport of
// backends started per command and of external plugins. The calls and their meaning are the
// server's and apiClient's; only the errors change shape here.

// grpcServer serves s on a gRPC server, each error as a status that keeps its meaning.
type grpcServer struct {
	rpc.UnimplementedRegistryServer
	s *wire.Server
}

func (g grpcServer) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	resp, err := g.s.Info(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	resp, err := g.s.Configure(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	resp, err := g.s.Register(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) RegisterBatch(ctx context.Context, req *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
	resp, err := g.s.RegisterBatch(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	resp, err := g.s.Deregister(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	resp, err := g.s.Heartbeat(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
	resp, err := g.s.Instances(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Services(ctx context.Context, req *pb.ServicesRequest) (*pb.ServicesResponse, error) {
	resp, err := g.s.Services(ctx, req)
	return resp, toStatus(err)
}

func (g grpcServer) Watch(req *pb.WatchRequest, stream rpc.Registry_WatchServer) error {
	return toStatus(g.s.Watch(stream.Context(), req, stream.Send))
}

func (g grpcServer) ClusterStatus(ctx context.Context, req *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	resp, err := g.s.ClusterStatus(ctx, req)
	return resp, toStatus(err)
}

// grpcAPI makes the protocol's calls on a gRPC connection to a backend. A status sent by the
// backend becomes its domain error again; anything else is a *wire.TransportError.
type grpcAPI struct{ rpc rpc.RegistryClient }

// fromGRPC turns the error of a gRPC call into what wire.API promises.
func fromGRPC(err error) error {
	if err == nil {
		return nil
	}
	if domainErr, fromBackend := fromStatus(err); fromBackend {
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
	return &wire.TransportError{Err: err}
}

func (g grpcAPI) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	resp, err := g.rpc.Info(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	resp, err := g.rpc.Configure(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	resp, err := g.rpc.Register(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) RegisterBatch(ctx context.Context, req *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
	resp, err := g.rpc.RegisterBatch(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	resp, err := g.rpc.Deregister(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	resp, err := g.rpc.Heartbeat(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
	resp, err := g.rpc.Instances(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Services(ctx context.Context, req *pb.ServicesRequest) (*pb.ServicesResponse, error) {
	resp, err := g.rpc.Services(ctx, req)
	return resp, fromGRPC(err)
}

func (g grpcAPI) Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.rpc.Watch(ctx, req)
	if err != nil {
		return fromGRPC(err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fromGRPC(err)
		}
		if err := send(ev); err != nil {
			return err
		}
	}
}

func (g grpcAPI) ClusterStatus(ctx context.Context, req *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	resp, err := g.rpc.ClusterStatus(ctx, req)
	return resp, fromGRPC(err)
}

var (
	_ rpc.RegistryServer = grpcServer{}
	_ wire.API           = grpcAPI{}
)
