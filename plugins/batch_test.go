package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/plugins/wire"
	"github.com/sdctl/sdctl/registry"
)

// countingFile is the file backend counting the calls it gets.
type countingFile struct {
	*file.Backend
	registers, batches *atomic.Int32
}

func (c countingFile) Register(ctx context.Context, inst registry.Instance) error {
	c.registers.Add(1)
	return c.Backend.Register(ctx, inst)
}

func (c countingFile) RegisterBatch(ctx context.Context, insts []registry.Instance) error {
	c.batches.Add(1)
	return c.Backend.RegisterBatch(ctx, insts)
}

// TestRegisterBatchNegotiation registers a batch through the gRPC boundary against a backend
// of this build (protocol 1.1: one call) and one playing a backend built before 1.1 (one call
// per instance), and checks that both registered everything.
func TestRegisterBatchNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		minor                  uint32
		wantBatches, wantCalls int32
	}{
		{"Protocol1.1", ProtocolMinor, 1, 0},
		{"Protocol1.0", 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var registers, batches atomic.Int32
			path := filepath.Join(t.TempDir(), "registry.json")
			b := Backend{
				Name: "file", Capabilities: file.Capabilities(),
				New: func(_ context.Context, _ map[string]any, _ *slog.Logger) (registry.Registry, error) {
					fb, err := file.Open(file.Options{Path: path})
					return countingFile{fb, &registers, &batches}, err
				},
			}
			minor := tc.minor
			client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginKey: &grpcPlugin{backend: b, minor: &minor}})
			defer client.Close()
			raw, err := client.Dispense(pluginKey)
			if err != nil {
				t.Fatal(err)
			}
			gc := raw.(*wire.Remote)
			ctx := t.Context()
			if err := gc.Configure(ctx, nil); err != nil {
				t.Fatal(err)
			}
			var insts []registry.Instance
			for i := range 3 {
				insts = append(insts, registry.Instance{ID: fmt.Sprintf("web-%d", i), Name: "web", Address: "10.0.0.1", Port: 1 + i})
			}
			if err := gc.RegisterBatch(ctx, insts); err != nil {
				t.Fatal(err)
			}
			if got := gc.Minor(); got != int(tc.minor) {
				t.Errorf("agreed minor version %d, want %d", got, tc.minor)
			}
			if batches.Load() != tc.wantBatches || registers.Load() != tc.wantCalls {
				t.Errorf("backend got %d batch calls and %d register calls, want %d and %d", batches.Load(), registers.Load(), tc.wantBatches, tc.wantCalls)
			}
			got, err := gc.Instances(ctx, registry.Query{Name: "web"})
			if err != nil || len(got) != 3 {
				t.Errorf("Instances after the batch: %d, %v", len(got), err)
			}
			// A bad entry fails the whole batch, naming it, and nothing of it is written.
			bad := append([]registry.Instance{{ID: "api-1", Name: "api", Address: "10.0.0.1", Port: 1}}, registry.Instance{ID: "api-2", Name: "api", Address: "10.0.0.1", Port: 0})
			if err := gc.RegisterBatch(ctx, bad); err == nil || !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("batch with a bad entry: %v", err)
			}
			if tc.minor >= 1 {
				if got, _ := gc.Instances(ctx, registry.Query{Name: "api"}); len(got) != 0 {
					t.Errorf("a failed batch registered %d instances", len(got))
				}
			}
		})
	}
}
