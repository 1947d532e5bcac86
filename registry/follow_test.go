package registry_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sdctl/sdctl/backends/file"
	"github.com/sdctl/sdctl/registry"
)

// noWatch is a registry whose backend cannot be watched.
type noWatch struct{ registry.Registry }

func (noWatch) Watch(context.Context, registry.WatchRequest, func(registry.Event) error) error {
	return registry.ErrUnsupported
}

func TestFollow(t *testing.T) {
	for _, tt := range []struct {
		name    string
		wrap    func(registry.Registry) registry.Registry
		polling bool
	}{
		{name: "watch", wrap: func(r registry.Registry) registry.Registry { return r }},
		{name: "poll without watch", wrap: func(r registry.Registry) registry.Registry { return noWatch{r} }, polling: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := file.Open(file.Options{Path: filepath.Join(t.TempDir(), "registry.yaml")})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			reg := tt.wrap(b)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stop := errors.New("seen")
			polled := false
			var seen []int
			err = registry.Follow(ctx, reg, "web", registry.FollowOptions{PollEvery: 10 * time.Millisecond, OnPoll: func() { polled = true }},
				func(insts []registry.Instance) error {
					seen = append(seen, len(insts))
					switch len(insts) {
					case 0:
						// The first call shows the state now; a change must follow.
						return reg.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 80})
					case 1:
						return stop
					}
					return nil
				})
			if !errors.Is(err, stop) {
				t.Fatalf("Follow returned %v after calls with %v instances", err, seen)
			}
			if seen[0] != 0 || seen[len(seen)-1] != 1 {
				t.Errorf("calls saw %v instances, want 0 first and 1 last", seen)
			}
			if polled != tt.polling {
				t.Errorf("polled = %v, want %v", polled, tt.polling)
			}
		})
	}
}

func TestFollowReturnsTheRegistrysError(t *testing.T) {
	b, err := file.Open(file.Options{Path: filepath.Join(t.TempDir(), "registry.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	err = registry.Follow(context.Background(), noWatch{b}, "web", registry.FollowOptions{}, func([]registry.Instance) error { return nil })
	if err == nil {
		t.Fatal("Follow on a closed registry returned nil")
	}
}
