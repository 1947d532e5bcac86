package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// Serve answers the calls that arrive on conn with api, each in its own goroutine, until the
// connection closes or breaks. A call that fails with a *TransportError (api relays to a
// backend it lost) closes the connection. It then cancels the calls still running, waits for them and
// closes conn. The error says why reading stopped (nil when the client closed the connection).
func Serve(conn net.Conn, api API) error {
	s := &serverConn{conn: conn, api: api, running: map[uint32]context.CancelFunc{}}
	err := s.loop()
	s.mu.Lock()
	for _, cancel := range s.running {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	_ = conn.Close()
	if isClosed(err) {
		return nil
	}
	return err
}

type serverConn struct {
	conn net.Conn
	api  API
	wg   sync.WaitGroup
	wmu  sync.Mutex

	mu      sync.Mutex
	running map[uint32]context.CancelFunc
}

func (s *serverConn) loop() error {
	r := bufio.NewReaderSize(s.conn, 64<<10)
	for {
		f, err := readFrame(r)
		if err != nil {
			return err
		}
		switch f.kind {
		case kindRequest:
			if len(f.body) < 9 {
				return errors.New("malformed request frame")
			}
			method := f.body[0]
			timeout := time.Duration(binary.BigEndian.Uint64(f.body[1:9]))
			ctx, cancel := context.WithCancel(context.Background())
			if timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), timeout)
			}
			s.mu.Lock()
			if _, dup := s.running[f.id]; dup {
				s.mu.Unlock()
				cancel()
				return fmt.Errorf("call %d opened twice", f.id)
			}
			s.running[f.id] = cancel
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(ctx, f.id, method, f.body[9:])
				s.mu.Lock()
				delete(s.running, f.id)
				s.mu.Unlock()
				cancel()
			}()
		case kindCancel:
			s.mu.Lock()
			cancel := s.running[f.id]
			s.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		default:
			return fmt.Errorf("unexpected frame kind %d from the client", f.kind)
		}
	}
}

// handle runs one call and writes its answer.
func (s *serverConn) handle(ctx context.Context, id uint32, method byte, body []byte) {
	var resp message
	var err error
	switch method {
	case methodInfo:
		resp, err = unary(ctx, body, s.api.Info)
	case methodConfigure:
		resp, err = unary(ctx, body, s.api.Configure)
	case methodRegister:
		resp, err = unary(ctx, body, s.api.Register)
	case methodRegisterBatch:
		resp, err = unary(ctx, body, s.api.RegisterBatch)
	case methodDeregister:
		resp, err = unary(ctx, body, s.api.Deregister)
	case methodHeartbeat:
		resp, err = unary(ctx, body, s.api.Heartbeat)
	case methodInstances:
		resp, err = unary(ctx, body, s.api.Instances)
	case methodServices:
		resp, err = unary(ctx, body, s.api.Services)
	case methodClusterStatus:
		resp, err = unary(ctx, body, s.api.ClusterStatus)
	case methodWatch:
		req := &pb.WatchRequest{}
		if err = req.UnmarshalVT(body); err == nil {
			err = s.api.Watch(ctx, req, func(ev *pb.WatchEvent) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return s.send(id, kindEvent, ev)
			})
		}
		if err == nil {
			_ = s.writeFrame(id, kindEnd, nil)
			return
		}
	default:
		err = fmt.Errorf("%w: this backend does not know call %d", registry.ErrUnsupported, method)
	}
	var te *TransportError
	if errors.As(err, &te) {
		// api relays to a backend whose connection broke (a bridge): the client must see a
		// broken connection too, not an error of the backend's.
		_ = s.conn.Close()
		return
	}
	if err != nil {
		_ = s.writeFrame(id, kindError, encodeError(err))
		return
	}
	_ = s.send(id, kindReply, resp)
}

// unary decodes a request of type Req and calls fn with it.
func unary[Req any, PReq interface {
	*Req
	message
}, Resp message](ctx context.Context, body []byte, fn func(context.Context, PReq) (Resp, error)) (message, error) {
	req := PReq(new(Req))
	if err := req.UnmarshalVT(body); err != nil {
		return nil, fmt.Errorf("%w: request: %v", registry.ErrInvalid, err)
	}
	return fn(ctx, req)
}

func (s *serverConn) send(id uint32, kind byte, m message) error {
	size := m.SizeVT()
	if headerLen-4+size > MaxFrame {
		err := fmt.Errorf("answer too large: %d bytes, more than %d", size, MaxFrame)
		_ = s.writeFrame(id, kindError, encodeError(err))
		return err
	}
	buf := appendHeader(make([]byte, 0, headerLen+size), id, kind, size)
	buf, err := appendMessage(buf, m, size)
	if err != nil {
		return err
	}
	return s.write(buf)
}

func (s *serverConn) writeFrame(id uint32, kind byte, body []byte) error {
	buf := appendHeader(make([]byte, 0, headerLen+len(body)), id, kind, len(body))
	return s.write(append(buf, body...))
}

func (s *serverConn) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(b)
	return err
}

func isClosed(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}
