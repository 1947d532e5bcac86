package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestConformance runs the suite in-process; plugins/plugins_test.go runs it again through
// the plugin boundary against the built binary.
func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := newMemory(context.Background(), nil, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}, registrytest.Options{Name: "memory", TTL: true, Watch: true, MinTTL: time.Second})
}

func TestSeedOption(t *testing.T) {
	r, err := newMemory(context.Background(), map[string]any{"seed": "web=10.0.0.1:80,api=[::1]:81"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.Instances(context.Background(), registry.Query{Name: "api"})
	if len(got) != 1 || got[0].Address != "::1" || got[0].Port != 81 {
		t.Fatalf("api = %+v", got)
	}
	if _, err := newMemory(context.Background(), map[string]any{"seed": "nonsense"}, slog.Default()); err == nil {
		t.Fatal("a bad seed was accepted")
	}
}
