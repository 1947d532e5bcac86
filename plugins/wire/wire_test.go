package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// api answers from functions a test sets; unset calls fail as unsupported.
type api struct {
	instances func(context.Context, *pb.InstancesRequest) (*pb.InstancesResponse, error)
	watch     func(context.Context, *pb.WatchRequest, func(*pb.WatchEvent) error) error
	register  func(context.Context, *pb.RegisterRequest) (*pb.RegisterResponse, error)
}

var errUnset = fmt.Errorf("%w: not in this test", registry.ErrUnsupported)

func (a *api) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Name: "test", ProtocolMinor: 1}, nil
}
func (a *api) Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return nil, errUnset
}
func (a *api) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	if a.register == nil {
		return nil, errUnset
	}
	return a.register(ctx, req)
}
func (a *api) RegisterBatch(context.Context, *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
	return nil, errUnset
}
func (a *api) Deregister(context.Context, *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	return nil, errUnset
}
func (a *api) Heartbeat(context.Context, *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	return nil, errUnset
}
func (a *api) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
	if a.instances == nil {
		return nil, errUnset
	}
	return a.instances(ctx, req)
}
func (a *api) Services(context.Context, *pb.ServicesRequest) (*pb.ServicesResponse, error) {
	return nil, errUnset
}
func (a *api) Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
	if a.watch == nil {
		return errUnset
	}
	return a.watch(ctx, req, send)
}
func (a *api) ClusterStatus(context.Context, *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	return nil, errUnset
}

// pair connects a Client to Serve(a) over a Unix socket pair and returns the client and a
// channel with Serve's result.
func pair(t *testing.T, a API) (*Client, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	sconn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- Serve(sconn, a) }()
	c := NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c, served
}

func TestUnaryAndErrors(t *testing.T) {
	a := &api{register: func(_ context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
		switch req.GetInstance().GetId() {
		case "ok":
			return &pb.RegisterResponse{}, nil
		case "exists":
			return nil, fmt.Errorf("instance %q: %w", "exists", registry.ErrAlreadyExists)
		case "field":
			return nil, registry.Invalidf("port", "must be 1-65535")
		default:
			return nil, errors.New("disk on fire")
		}
	}}
	c, _ := pair(t, a)
	ctx := t.Context()
	info, err := c.Info(ctx, &pb.InfoRequest{})
	if err != nil || info.GetName() != "test" {
		t.Fatalf("Info: %v, %v", info, err)
	}
	if _, err := c.Register(ctx, &pb.RegisterRequest{Instance: &pb.Instance{Id: "ok"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(ctx, &pb.RegisterRequest{Instance: &pb.Instance{Id: "exists"}})
	if !errors.Is(err, registry.ErrAlreadyExists) || err.Error() != `instance "exists": already exists` {
		t.Errorf("sentinel error: %v (%T)", err, err)
	}
	_, err = c.Register(ctx, &pb.RegisterRequest{Instance: &pb.Instance{Id: "field"}})
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "port" || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("field error: %v (%T)", err, err)
	}
	_, err = c.Register(ctx, &pb.RegisterRequest{Instance: &pb.Instance{Id: "plain"}})
	var re *RemoteError
	if !errors.As(err, &re) || err.Error() != "disk on fire" || re.Sentinel != nil {
		t.Errorf("plain error: %v (%T)", err, err)
	}
	var te *TransportError
	if errors.As(err, &te) {
		t.Errorf("a backend's error reported as a transport error: %v", err)
	}
	_, err = c.Services(ctx, &pb.ServicesRequest{})
	if !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("unset call: %v", err)
	}
}

func TestDeadlineAndCancelReachTheServer(t *testing.T) {
	gotDeadline := make(chan time.Duration, 1)
	cancelled := make(chan error, 1)
	blocked := make(chan struct{})
	a := &api{instances: func(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
		if req.GetName() == "deadline" {
			dl, ok := ctx.Deadline()
			if !ok {
				gotDeadline <- 0
			} else {
				gotDeadline <- time.Until(dl)
			}
			return &pb.InstancesResponse{}, nil
		}
		close(blocked)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	}}
	c, _ := pair(t, a)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.Instances(ctx, &pb.InstancesRequest{Name: "deadline"}); err != nil {
		t.Fatal(err)
	}
	if d := <-gotDeadline; d <= 25*time.Second || d > 30*time.Second {
		t.Errorf("server's deadline in %v, want about 30s", d)
	}

	ctx2, cancel2 := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Instances(ctx2, &pb.InstancesRequest{Name: "block"})
		errc <- err
	}()
	<-blocked
	cancel2()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want context.Canceled", err)
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's call was not cancelled")
	}
}

func TestConcurrentCallsAndWatchCallbackCalls(t *testing.T) {
	stop := make(chan struct{})
	a := &api{
		instances: func(_ context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
			return &pb.InstancesResponse{Instances: []*pb.Instance{{Id: req.GetName()}}}, nil
		},
		watch: func(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
			for i := range 5 {
				if err := send(&pb.WatchEvent{Index: uint64(i + 1)}); err != nil {
					return err
				}
			}
			if req.GetName() == "end" {
				return nil
			}
			select {
			case <-ctx.Done():
				close(stop)
				return ctx.Err()
			case <-time.After(10 * time.Second):
				return errors.New("not cancelled")
			}
		},
	}
	c, _ := pair(t, a)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("s", i)
			resp, err := c.Instances(ctx, &pb.InstancesRequest{Name: name})
			if err == nil && resp.GetInstances()[0].GetId() != name {
				err = fmt.Errorf("call %s got the answer of %s", name, resp.GetInstances()[0].GetId())
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A callback that makes calls on the same connection, and a stream the backend ends.
	var seen []uint64
	err := c.Watch(ctx, &pb.WatchRequest{Name: "end"}, func(ev *pb.WatchEvent) error {
		seen = append(seen, ev.GetIndex())
		_, err := c.Instances(ctx, &pb.InstancesRequest{Name: "inner"})
		return err
	})
	if err != nil || len(seen) != 5 {
		t.Fatalf("watch: %v, events %v", err, seen)
	}
	// A callback's error ends the stream on both sides.
	errStop := errors.New("enough")
	n := 0
	err = c.Watch(ctx, &pb.WatchRequest{Name: "hold"}, func(*pb.WatchEvent) error {
		if n++; n == 5 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("watch: %v, want the callback's error", err)
	}
	select {
	case <-stop:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's watch was not cancelled")
	}
}

func TestConnectionLoss(t *testing.T) {
	started := make(chan struct{})
	a := &api{instances: func(ctx context.Context, _ *pb.InstancesRequest) (*pb.InstancesResponse, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverConn := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			serverConn <- conn
			_ = Serve(conn, a)
		}
	}()
	conn, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Instances(t.Context(), &pb.InstancesRequest{})
		errc <- err
	}()
	<-started
	(<-serverConn).Close()
	err = <-errc
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("call on a closed connection: %v (%T), want a TransportError", err, err)
	}
	if _, err := c.Info(t.Context(), &pb.InfoRequest{}); !errors.As(err, &te) {
		t.Fatalf("call after the connection closed: %v", err)
	}
}

func TestOversizedFrameIsRefused(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		// Read the request, then claim an answer far past MaxFrame.
		if _, err := readFrame(conn); err != nil {
			return
		}
		var h [headerLen]byte
		binary.BigEndian.PutUint32(h[0:4], MaxFrame+100)
		binary.BigEndian.PutUint32(h[4:8], 1)
		h[8] = kindReply
		_, _ = conn.Write(h[:])
		time.Sleep(time.Second)
	}()
	conn, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	defer c.Close()
	_, err = c.Info(t.Context(), &pb.InfoRequest{})
	if err == nil || !strings.Contains(err.Error(), "answer too large") {
		t.Fatalf("oversized answer: %v", err)
	}
}

func TestServeEndsWhenTheClientCloses(t *testing.T) {
	c, served := pair(t, &api{})
	if _, err := c.Info(t.Context(), &pb.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v, want nil after the client closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the client closed")
	}
}

// The framed protocol encodes with the generated vtproto methods, the gRPC path with the
// protobuf runtime: both must read what the other wrote.
func TestGeneratedCodecMatchesTheRuntime(t *testing.T) {
	pick := uint64(7)
	msgs := []message{
		&pb.InstancesResponse{Instances: []*pb.Instance{{
			Id: "web-1", Name: "web", Address: "10.0.0.1", Port: 8080, Tags: []string{"a", "b"},
			Meta: map[string]string{"k": "v", "z": ""}, Weight: 3, Drain: true, TtlNs: 5e9, Health: "passing",
			Node: "n1", ExpiresUnixNs: 1700000000000000000,
			Checks: []*pb.Check{{Kind: "http", Target: "http://10.0.0.1:8080/health", IntervalNs: 1e9, TimeoutNs: 2e8}},
		}, {Id: "web-2"}}},
		&pb.InstancesRequest{Name: "web", Tags: []string{"x"}, HealthyOnly: true, IncludeWarning: true, Pick: &pick},
		&pb.InfoResponse{Name: "file", Version: "v1", ProtocolMinor: 1, Configured: true},
		&pb.WatchEvent{Index: 42, Instances: []*pb.Instance{{Id: "a", Port: 1}}},
	}
	for _, m := range msgs {
		buf, err := appendMessage(nil, m, m.SizeVT())
		if err != nil {
			t.Fatal(err)
		}
		pm := m.(proto.Message)
		back := pm.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(buf, back); err != nil || !proto.Equal(pm, back) {
			t.Errorf("%T: the runtime read %v (%v) from the generated encoding", m, back, err)
		}
		std, err := proto.Marshal(pm)
		if err != nil {
			t.Fatal(err)
		}
		again := pm.ProtoReflect().New().Interface()
		if err := again.(message).UnmarshalVT(std); err != nil || !proto.Equal(pm, again) {
			t.Errorf("%T: the generated decoder read %v (%v) from the runtime's encoding", m, again, err)
		}
	}
}
