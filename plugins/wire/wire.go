// Package wire is the protocol between sdctl and a warm backend: the messages of
// plugins/proto, framed on one Unix socket connection without gRPC.
//
// A warm backend serves many short commands, and each command process pays for every package
// it links before its first instruction runs. gRPC (HTTP/2, its transport and its generated
// registry of services) costs a command more than the work it asks a warm backend for, so the
// warm path frames the same protocol messages itself. go-plugin's gRPC stays the protocol of
// backends started per command and of external plugins (see docs/concepts.md, "Warm backends").
//
// A connection carries any number of concurrent calls. Every frame is
//
//	uint32 length of the rest | uint32 call ID | uint8 kind | body
//
// in big-endian order. The client opens a call with a request (method, timeout in
// nanoseconds or 0, message); the server answers with one reply or one error, or, for Watch,
// with any number of events and then an end or an error. The client ends a call early with a
// cancel frame.
package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// API is the protocol's calls, the same set as the gRPC service in plugins/proto. A server
// implements it; a Client is one. Errors are domain errors (registry's sentinels,
// *registry.FieldError); Watch calls send for each event and returns nil when the backend ends
// the stream.
type API interface {
	Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error)
	Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error)
	Register(context.Context, *pb.RegisterRequest) (*pb.RegisterResponse, error)
	RegisterBatch(context.Context, *pb.RegisterBatchRequest) (*pb.RegisterBatchResponse, error)
	Deregister(context.Context, *pb.DeregisterRequest) (*pb.DeregisterResponse, error)
	Heartbeat(context.Context, *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error)
	Instances(context.Context, *pb.InstancesRequest) (*pb.InstancesResponse, error)
	Services(context.Context, *pb.ServicesRequest) (*pb.ServicesResponse, error)
	Watch(ctx context.Context, req *pb.WatchRequest, send func(*pb.WatchEvent) error) error
	ClusterStatus(context.Context, *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error)
}

// message is a protocol message with the methods protoc-gen-go-vtproto generates for it
// (plugins/proto/registry_vtproto.pb.go): encoding and decoding without reflection, and without
// the setup the protobuf runtime does for each message type on its first use, which a short
// command would pay for every call.
type message interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// appendMessage appends m's encoding, of m.SizeVT() bytes, to b.
func appendMessage(b []byte, m message, size int) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, size)...)
	n, err := m.MarshalToSizedBufferVT(b[start:])
	if err == nil && n != size {
		err = fmt.Errorf("encoded %d bytes of %d", n, size)
	}
	return b, err
}

// Frame kinds.
const (
	kindRequest byte = 1 + iota // method, timeout, message
	kindReply                   // message; ends the call
	kindEvent                   // message of a stream
	kindEnd                     // the stream ended without error
	kindError                   // an error; ends the call
	kindCancel                  // the client gave up the call
)

// Methods, in the order of the service definition.
const (
	methodInfo byte = 1 + iota
	methodConfigure
	methodRegister
	methodRegisterBatch
	methodDeregister
	methodHeartbeat
	methodInstances
	methodServices
	methodWatch
	methodClusterStatus
)

// MaxFrame is the largest frame either side accepts: an answer of about a million instances.
// Past it the call fails with "answer too large" and the connection is closed.
const MaxFrame = 256 << 20

const headerLen = 4 + 4 + 1

type frame struct {
	id   uint32
	kind byte
	body []byte
}

// readFrame reads one frame from r.
func readFrame(r io.Reader) (frame, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < headerLen-4 {
		return frame{}, fmt.Errorf("malformed frame (length %d)", n)
	}
	if n > MaxFrame {
		return frame{}, fmt.Errorf("answer too large: a frame of %d bytes, more than %d", n, MaxFrame)
	}
	f := frame{id: binary.BigEndian.Uint32(h[4:8]), kind: h[8]}
	if rest := int(n) - (headerLen - 4); rest > 0 {
		f.body = make([]byte, rest)
		if _, err := io.ReadFull(r, f.body); err != nil {
			return frame{}, err
		}
	}
	return f, nil
}

// appendHeader starts a frame whose body is bodyLen bytes long.
func appendHeader(b []byte, id uint32, kind byte, bodyLen int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(headerLen-4+bodyLen))
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, kind)
}

// sentinels are the domain errors that keep their identity across the connection, by index.
// Index 0 is an error of the backend without a sentinel. Append only: both sides of a
// connection are the same build today, but the order is the protocol.
var sentinels = []error{
	nil,
	registry.ErrNotFound,
	registry.ErrAlreadyExists,
	registry.ErrInvalid,
	registry.ErrUnavailable,
	registry.ErrPermissionDenied,
	registry.ErrUnsupported,
	registry.ErrNoLeader,
	context.Canceled,
	context.DeadlineExceeded,
}

// encodeError is the body of an error frame: the sentinel's index, then three length-prefixed
// strings: the message, and for a *registry.FieldError its field and reason.
func encodeError(err error) []byte {
	kind := 0
	for i, s := range sentinels[1:] {
		if errors.Is(err, s) {
			kind = i + 1
			break
		}
	}
	var field, reason string
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		field, reason = fe.Field, fe.Reason
	}
	b := []byte{byte(kind)}
	for _, s := range []string{err.Error(), field, reason} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeError turns an error frame's body back into a domain error.
func decodeError(b []byte) error {
	if len(b) < 1 {
		return &TransportError{Err: errors.New("malformed error frame")}
	}
	kind := int(b[0])
	b = b[1:]
	var parts [3]string
	for i := range parts {
		if len(b) < 4 {
			return &TransportError{Err: errors.New("malformed error frame")}
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(len(b)) < uint64(n) {
			return &TransportError{Err: errors.New("malformed error frame")}
		}
		parts[i], b = string(b[:n]), b[n:]
	}
	msg, field, reason := parts[0], parts[1], parts[2]
	if field != "" {
		return &registry.FieldError{Field: field, Reason: reason}
	}
	if kind > 0 && kind < len(sentinels) {
		return &RemoteError{Msg: msg, Sentinel: sentinels[kind]}
	}
	return &RemoteError{Msg: msg}
}

// RemoteError is an error a backend returned: it prints the backend's message and matches the
// sentinel it was sent as, if any.
type RemoteError struct {
	Msg      string
	Sentinel error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.Sentinel }

// TransportError is an error of the connection, not of the backend: it closed, broke, or
// carried something that is not this protocol.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return "warm backend connection: " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }
