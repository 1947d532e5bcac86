package wire

import (
	"context"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/sdctl/sdctl/plugins/proto"
	"github.com/sdctl/sdctl/registry"
)

// TestInstanceRoundTrip checks that every field of an instance survives the protocol, through
// the wire encoding too: a field the conversion forgot would arrive empty on the other side.
func TestInstanceRoundTrip(t *testing.T) {
	full := registry.Instance{
		ID: "web-1", Name: "web", Address: "fd00::1", Port: 8080,
		Tags: []string{"a", "b"}, Meta: map[string]string{"zone": "eu"}, Weight: 3, Drain: true, TTL: 1500 * time.Millisecond,
		Checks: []registry.Check{{
			Kind: registry.CheckHTTP, Target: "http://10.0.0.1/health", Interval: time.Second, Timeout: 2 * time.Second,
			DeregisterAfter: time.Minute, Method: "HEAD", Header: map[string][]string{"X-A": {"1", "2"}},
			TLSSkipVerify: true, InitialStatus: registry.HealthWarning, GRPCUseTLS: true,
		}},
		Health:  registry.HealthMaintenance,
		Node:    "node-1",
		Expires: time.Date(2026, 11, 26, 12, 0, 0, 5, time.UTC),
	}
	// Every exported field is set, so the comparison below covers them all.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the test instance leaves %s empty", v.Type().Field(i).Name)
		}
	}
	for _, h := range []registry.Health{"", registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance} {
		in := full
		in.Health = h
		wire, err := proto.Marshal(instanceToProto(in))
		if err != nil {
			t.Fatal(err)
		}
		var msg pb.Instance
		if err := proto.Unmarshal(wire, &msg); err != nil {
			t.Fatal(err)
		}
		if got := instanceFromProto(&msg); !reflect.DeepEqual(got, in) {
			t.Errorf("round trip with health %q:\n got %+v\nwant %+v", h, got, in)
		}
	}
}

// recorder is a registry that keeps the instance it was asked to register.
type recorder struct {
	registry.Registry
	got registry.Instance
}

func (r *recorder) Register(_ context.Context, inst registry.Instance) error {
	r.got = inst
	return nil
}

// TestRegisterCarriesDeclaredHealth checks the Register call end to end on both sides of the
// protocol: the client's request, decoded by the server, reaches the backend with its health.
func TestRegisterCarriesDeclaredHealth(t *testing.T) {
	rec := &recorder{}
	srv := &Server{reg: rec}
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Health: registry.HealthCritical}
	req := &pb.RegisterRequest{Instance: instanceToProto(inst)}
	encoded, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var decoded pb.RegisterRequest
	if err := proto.Unmarshal(encoded, &decoded); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Register(context.Background(), &decoded); err != nil {
		t.Fatal(err)
	}
	if rec.got.Health != registry.HealthCritical || rec.got.ID != "web-1" {
		t.Errorf("the backend received %+v, want web-1 declared critical", rec.got)
	}
}
