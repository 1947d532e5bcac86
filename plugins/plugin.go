package plugins

import (
	"context"
	"log/slog"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/proto/rpc"
	"github.com/sdctl/sdctl/plugins/server"
	"github.com/sdctl/sdctl/plugins/wire"
)

// ProtocolVersion is the newest plugin protocol this build speaks (see wire.ProtocolVersion).
const ProtocolVersion = wire.ProtocolVersion

// ProtocolMinor is the newest minor version of protocol 1 this build speaks (see
// wire.ProtocolMinor).
const ProtocolMinor = wire.ProtocolMinor

// Backend describes a registry backend to serve (see wire.Backend).
type Backend = wire.Backend

// pluginKey names the one plugin a backend process serves.
const pluginKey = "registry"

// Handshake is shared by sdctl and every backend. The cookie only keeps people from running a
// backend by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   host.MagicCookieKey,
	MagicCookieValue: host.MagicCookieValue,
}

// Large answers (10,000 instances are about 0.5 MB) would otherwise cross the socket in 64 KiB
// flow-control windows, each waiting for the other side's update. On a local socket there is
// nothing to protect with small windows.
const grpcWindow = 16 << 20

// grpcDialOptions are the host's options for a plugin connection. Both ends of one (see
// newGRPCServer) take the buffers of the messages they read and write from mem.NopBufferPool:
// each of the size it needs, left to the garbage collector. gRPC's default pool rounds every
// message between 32 KiB and 1 MiB up to a 1 MiB buffer and keeps some of them per CPU, which
// in `sdctl watch` (an answer of every instance after each change) made up half of the live
// heap of the watcher.
var grpcDialOptions = []grpc.DialOption{
	grpc.WithInitialWindowSize(grpcWindow),
	grpc.WithInitialConnWindowSize(grpcWindow),
	experimental.WithBufferPool(mem.NopBufferPool{}),
}

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.InitialWindowSize(grpcWindow), grpc.InitialConnWindowSize(grpcWindow),
		experimental.BufferPool(mem.NopBufferPool{}))...)
}

// versionedPlugins lists the plugin sets per protocol version. A server-side set carries the
// backend; the host side passes a zero Backend.
func versionedPlugins(b Backend, log *slog.Logger, srv **wire.Server) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {pluginKey: &grpcPlugin{backend: b, log: log, srv: srv}},
	}
}

// grpcPlugin is go-plugin's view of a backend: how to serve it and how to reach it.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	backend Backend
	log     *slog.Logger
	srv     **wire.Server
	// minor, when set, overrides the protocol minor version the server reports (tests play a
	// backend built before 1.1 with it).
	minor *uint32
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := wire.NewServer(p.backend, p.log)
	srv.OnWatch = server.LimitMemory // a process that serves a watch stays up
	if p.minor != nil {
		srv.Minor = *p.minor
	}
	if p.srv != nil {
		*p.srv = srv
	}
	rpc.RegisterRegistryServer(s, grpcServer{s: srv})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return wire.NewRemote(grpcAPI{rpc: rpc.NewRegistryClient(conn)}), nil
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)
