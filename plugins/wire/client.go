package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	pb "github.com/sdctl/sdctl/plugins/proto"
)

// Client makes calls on one connection to a warm backend. Calls may run concurrently; the
// connection stays open until Close.
type Client struct {
	conn net.Conn

	wmu sync.Mutex // one frame written at a time

	mu     sync.Mutex
	lastID uint32
	calls  map[uint32]*pending
	err    error         // why the connection stopped, once it has
	done   chan struct{} // closed when the reader stops
}

// NewClient starts reading answers from conn. The Client owns conn from now on.
func NewClient(conn net.Conn) *Client {
	c := &Client{conn: conn, calls: map[uint32]*pending{}, done: make(chan struct{})}
	go c.read()
	return c
}

// Close closes the connection; calls still running fail.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// pending holds the frames received for one call until its caller takes them. It never
// blocks the reader, so a Watch callback may make other calls on the same connection.
type pending struct {
	mu   sync.Mutex
	q    []frame
	wake chan struct{}
}

func (p *pending) push(f frame) {
	p.mu.Lock()
	p.q = append(p.q, f)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pending) pop() (frame, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) == 0 {
		return frame{}, false
	}
	f := p.q[0]
	p.q[0] = frame{}
	p.q = p.q[1:]
	return f, true
}

func (c *Client) read() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		f, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = errors.New("the backend closed the connection")
			}
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			close(c.done)
			// A frame that could not be read leaves the stream unusable.
			_ = c.conn.Close()
			return
		}
		c.mu.Lock()
		p := c.calls[f.id]
		c.mu.Unlock()
		if p != nil { // else a call given up, whose late frames are dropped
			p.push(f)
		}
	}
}

func (c *Client) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &TransportError{Err: c.err}
}

// start sends the request of a new call.
func (c *Client) start(ctx context.Context, method byte, req message) (uint32, *pending, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	p := &pending{wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, nil, c.stopped()
	}
	c.lastID++
	id := c.lastID
	c.calls[id] = p
	c.mu.Unlock()

	var timeout int64
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(deadline).Nanoseconds(), 1)
	}
	size := req.SizeVT()
	buf := appendHeader(make([]byte, 0, headerLen+9+size), id, kindRequest, 9+size)
	buf = append(buf, method)
	buf = binary.BigEndian.AppendUint64(buf, uint64(timeout))
	buf, err := appendMessage(buf, req, size)
	if err == nil {
		err = c.write(buf)
	}
	if err != nil {
		c.forget(id)
		return 0, nil, &TransportError{Err: err}
	}
	return id, p, nil
}

func (c *Client) write(b []byte) error {
	if len(b)-4 > MaxFrame {
		return errors.New("request too large")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

func (c *Client) forget(id uint32) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// cancel gives up call id and tells the backend so.
func (c *Client) cancel(id uint32) {
	c.forget(id)
	_ = c.write(appendHeader(make([]byte, 0, headerLen), id, kindCancel, 0))
}

// next waits for the next frame of call id.
func (c *Client) next(ctx context.Context, id uint32, p *pending) (frame, error) {
	for {
		if f, ok := p.pop(); ok {
			return f, nil
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			c.cancel(id)
			return frame{}, ctx.Err()
		case <-c.done:
			if f, ok := p.pop(); ok {
				return f, nil
			}
			return frame{}, c.stopped()
		}
	}
}

// unary makes one call with one answer.
func (c *Client) unary(ctx context.Context, method byte, req, resp message) error {
	id, p, err := c.start(ctx, method, req)
	if err != nil {
		return err
	}
	defer c.forget(id)
	f, err := c.next(ctx, id, p)
	if err != nil {
		return err
	}
	switch f.kind {
	case kindReply:
		if err := resp.UnmarshalVT(f.body); err != nil {
			return &TransportError{Err: err}
		}
		return nil
	case kindError:
		return decodeError(f.body)
	}
	return &TransportError{Err: errors.New("unexpected frame")}
}

// Watch streams the backend's events to send until send fails, ctx ends, or the backend ends
// the stream (nil).
func (c *Client) Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error {
	id, p, err := c.start(ctx, methodWatch, req)
	if err != nil {
		return err
	}
	defer c.forget(id)
	for {
		f, err := c.next(ctx, id, p)
		if err != nil {
			return err
		}
		switch f.kind {
		case kindEvent:
			ev := &pb.WatchEvent{}
			if err := ev.UnmarshalVT(f.body); err != nil {
				c.cancel(id)
				return &TransportError{Err: err}
			}
			if err := send(ev); err != nil {
				c.cancel(id)
				return err
			}
		case kindEnd:
			return nil
		case kindError:
			return decodeError(f.body)
		default:
			c.cancel(id)
			return &TransportError{Err: errors.New("unexpected frame")}
		}
	}
}

func (c *Client) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	resp := &pb.InfoResponse{}
	return resp, c.unary(ctx, methodInfo, req, resp)
}

func (c *Client) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	resp := &pb.ConfigureResponse{}
	return resp, c.unary(ctx, methodConfigure, req, resp)
}

func (c *Client) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	resp := &pb.RegisterResponse{}
	return resp, c.unary(ctx, methodRegister, req, resp)
}

func (c *Client) RegisterBatch(ctx context.Context, req *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error) {
	resp := &pb.RegisterBatchResponse{}
	return resp, c.unary(ctx, methodRegisterBatch, req, resp)
}

func (c *Client) Deregister(ctx context.Context, req *pb.DeregisterRequest) (*pb.DeregisterResponse, error) {
	resp := &pb.DeregisterResponse{}
	return resp, c.unary(ctx, methodDeregister, req, resp)
}

func (c *Client) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	resp := &pb.HeartbeatResponse{}
	return resp, c.unary(ctx, methodHeartbeat, req, resp)
}

func (c *Client) Instances(ctx context.Context, req *pb.InstancesRequest) (*pb.InstancesResponse, error) {
	resp := &pb.InstancesResponse{}
	return resp, c.unary(ctx, methodInstances, req, resp)
}

func (c *Client) Services(ctx context.Context, req *pb.ServicesRequest) (*pb.ServicesResponse, error) {
	resp := &pb.ServicesResponse{}
	return resp, c.unary(ctx, methodServices, req, resp)
}

func (c *Client) ClusterStatus(ctx context.Context, req *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	resp := &pb.ClusterStatusResponse{}
	return resp, c.unary(ctx, methodClusterStatus, req, resp)
}

var _ API = (*Client)(nil)
