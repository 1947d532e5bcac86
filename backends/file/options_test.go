package file

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

func TestNewOptions(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()

	for _, tc := range []struct {
		name     string
		section  map[string]any
		wantPath string
		wantPoll time.Duration
	}{
		{"Path", map[string]any{"path": filepath.Join(dir, "r.json")}, filepath.Join(dir, "r.json"), time.Second},
		{"HomePath", map[string]any{"path": "~/reg.json"}, filepath.Join(home, "reg.json"), time.Second},
		{"PollString", map[string]any{"path": filepath.Join(dir, "r.json"), "poll-interval": "250ms"}, filepath.Join(dir, "r.json"), 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.section)
			if err != nil {
				t.Fatal(err)
			}
			if b.Path() != tc.wantPath || b.poll != tc.wantPoll {
				t.Errorf("path %s poll %v, want %s %v", b.Path(), b.poll, tc.wantPath, tc.wantPoll)
			}
		})
	}

	t.Run("RelativePath", func(t *testing.T) {
		b, err := New(map[string]any{"path": "rel/registry.json"})
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(b.Path()) || !strings.HasSuffix(b.Path(), filepath.Join("rel", "registry.json")) {
			t.Errorf("path %q is not the absolute form of rel/registry.json", b.Path())
		}
	})

	for _, tc := range []struct {
		name    string
		section map[string]any
		field   string
	}{
		{"PollTooShort", map[string]any{"poll-interval": "1ms"}, "poll-interval"},
		{"PollNegative", map[string]any{"poll-interval": "-1s"}, "poll-interval"},
		{"PollNotDuration", map[string]any{"poll-interval": "often"}, "poll-interval"},
		{"UnknownKey", map[string]any{"pth": "/tmp/x"}, "pth"},
		{"PathIsDirectory", map[string]any{"path": dir}, "path"},
		{"NoPath", map[string]any{}, "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.section)
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("New(%v) = %v, want a FieldError for %q", tc.section, err, tc.field)
			}
		})
	}
}

// TestOptionSchema keeps the documented keys in step with the Options struct.
func TestOptionSchema(t *testing.T) {
	var keys []string
	ty := reflect.TypeFor[Options]()
	for i := range ty.NumField() {
		if k := ty.Field(i).Tag.Get("mapstructure"); k != "-" {
			keys = append(keys, k)
		}
	}
	var documented []string
	for _, o := range OptionSchema() {
		documented = append(documented, o.Key)
		if o.Help == "" || o.Default == "" {
			t.Errorf("option %q lacks help or a default", o.Key)
		}
	}
	if !slices.Equal(keys, documented) {
		t.Errorf("Options keys %q, documented %q", keys, documented)
	}
}

func TestInfo(t *testing.T) {
	b, err := Open(Options{Path: filepath.Join(t.TempDir(), "r.json"), Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != Name || info.Version != "v1.2.3" || !info.Has(registry.CapTTL) || !info.Has(registry.CapWatch) ||
		!info.Has(registry.CapWeights) || info.Has(registry.CheckCapability(registry.CheckHTTP)) || len(info.Options) != 2 {
		t.Errorf("Info = %+v", info)
	}
	if _, err := os.Stat(b.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open or Info created the file (%v)", err)
	}
}
