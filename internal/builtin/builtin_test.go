package builtin

import (
	"path/filepath"
	"testing"
)

func TestDefaultFilePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct{ xdg, want string }{
		{"/srv/data", "/srv/data/sdctl/registry.json"},
		{"", filepath.Join(home, ".local", "share", "sdctl", "registry.json")},
		{"relative/dir", filepath.Join(home, ".local", "share", "sdctl", "registry.json")},
	} {
		t.Setenv("XDG_DATA_HOME", tc.xdg)
		if got, err := DefaultFilePath(); err != nil || got != tc.want {
			t.Errorf("XDG_DATA_HOME=%q: DefaultFilePath() = %q, %v; want %q", tc.xdg, got, err, tc.want)
		}
	}
}

// The backend the host starts gets the default path and sdctl's version when the section
// leaves the path out, and the section's path otherwise.
func TestFileBackendDefaults(t *testing.T) {
	dataHome := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dataHome)
	b := Backends()[0]
	reg, err := b.New(t.Context(), map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	st, err := reg.ClusterStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dataHome, "sdctl", "registry.json"); len(st.Members) != 1 || st.Members[0].Address != want {
		t.Errorf("members %+v, want the default path %s", st.Members, want)
	}
	if st.Members[0].Version != b.Version || b.Version == "" {
		t.Errorf("version %q, want sdctl's %q", st.Members[0].Version, b.Version)
	}
	own := filepath.Join(t.TempDir(), "own.json")
	reg2, err := b.New(t.Context(), map[string]any{"path": own}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg2.Close()
	if st, err := reg2.ClusterStatus(t.Context()); err != nil || st.Members[0].Address != own {
		t.Errorf("status %+v, %v; want the section's path %s", st, err, own)
	}
}
