package resolve

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// notADir returns a path that is a regular file, so nothing can be created below it, whatever
// the permissions of the user running the tests (root included).
func notADir(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileCounterSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sdctl", "round-robin.json")
	tests := []struct {
		name string
		key  string
		want uint64
	}{
		{name: "first use starts at zero", key: "web", want: 0},
		{name: "second use", key: "web", want: 1},
		{name: "other key starts at zero", key: "db", want: 0},
		{name: "first key goes on", key: "web", want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A new FileCounter per call, as separate processes would have.
			got, err := (&FileCounter{Path: path}).Next(tt.key)
			if err != nil || got != tt.want {
				t.Fatalf("Next(%q) = %d, %v; want %d", tt.key, got, err, tt.want)
			}
		})
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode = %v, want 0600", perm)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestFileCounterConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "round-robin.json")
	const workers, each = 8, 25
	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			// Each goroutine has its own FileCounter and so its own lock file descriptor: the
			// flock excludes them from one another as it would separate processes.
			c := &FileCounter{Path: path, LockTimeout: time.Minute}
			for range each {
				n, err := c.Next("web")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("counter %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for n := range uint64(workers * each) {
		if !seen[n] {
			t.Errorf("counter %d never handed out", n)
		}
	}
}

func TestFileCounterState(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		existing string
		key      string
		want     uint64
		wantKeys []string
	}{
		{name: "corrupt file starts over", existing: "{not json", key: "web", want: 0, wantKeys: []string{"web"}},
		{name: "wrong shape starts over", existing: `["web"]`, key: "web", want: 0, wantKeys: []string{"web"}},
		{name: "empty file starts over", existing: "", key: "web", want: 0, wantKeys: []string{"web"}},
		{name: "null starts over", existing: "null", key: "web", want: 0, wantKeys: []string{"web"}},
		{
			name:     "existing counter continues",
			existing: `{"web": {"next": 41, "used": "2026-02-28T00:00:00Z"}}`,
			key:      "web", want: 41, wantKeys: []string{"web"},
		},
		{
			name: "keys unused for 30 days are dropped",
			existing: `{"old": {"next": 5, "used": "2026-01-20T00:00:00Z"},
			            "recent": {"next": 5, "used": "2026-02-20T00:00:00Z"},
			            "undated": {"next": 5}}`,
			key: "web", want: 0, wantKeys: []string{"recent", "web"},
		},
		{
			name:     "an expired key starts over",
			existing: `{"web": {"next": 9, "used": "2025-12-01T00:00:00Z"}}`,
			key:      "web", want: 0, wantKeys: []string{"web"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "round-robin.json")
			if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &FileCounter{Path: path, Now: func() time.Time { return now }}
			got, err := c.Next(tt.key)
			if err != nil || got != tt.want {
				t.Fatalf("Next(%q) = %d, %v; want %d", tt.key, got, err, tt.want)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var state map[string]counterEntry
			if err := json.Unmarshal(data, &state); err != nil {
				t.Fatalf("state file does not parse after Next: %v\n%s", err, data)
			}
			if got, want := strings.Join(slices.Sorted(maps.Keys(state)), ","), strings.Join(tt.wantKeys, ","); got != want {
				t.Errorf("keys kept = %s, want %s", got, want)
			}
			if e := state[tt.key]; e.Next != tt.want+1 || !e.Used.Equal(now) {
				t.Errorf("entry %q = %+v, want next %d used %s", tt.key, e, tt.want+1, now)
			}
		})
	}
}

func TestFileCounterErrors(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "held.json")
	lock := flock.New(held + ".lock")
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Unlock() })

	tests := []struct {
		name    string
		counter *FileCounter
		want    string
	}{
		{name: "no path", counter: &FileCounter{}, want: "no path"},
		{name: "directory cannot be created", counter: &FileCounter{Path: filepath.Join(notADir(t), "sdctl", "rr.json")}, want: "not a directory"},
		{name: "lock held by another process", counter: &FileCounter{Path: held, LockTimeout: 20 * time.Millisecond}, want: "held by another process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.counter.Next("web")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Next error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(held); !os.IsNotExist(err) {
		t.Errorf("state file written without the lock (stat: %v)", err)
	}
}

func TestDefaultStatePath(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name string
		xdg  string
		want string
	}{
		{name: "XDG_STATE_HOME", xdg: "/var/state", want: filepath.Join("/var/state", "sdctl", "round-robin.json")},
		{name: "unset falls back to HOME", xdg: "", want: filepath.Join(home, ".local", "state", "sdctl", "round-robin.json")},
		{name: "relative is ignored", xdg: "state", want: filepath.Join(home, ".local", "state", "sdctl", "round-robin.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			got, err := DefaultStatePath()
			if err != nil || got != tt.want {
				t.Fatalf("DefaultStatePath() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
