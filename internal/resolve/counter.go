package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/sdctl/sdctl/internal/xdg"
)

// Defaults of FileCounter.
const (
	// DefaultMaxAge is how long a key is kept after its last use.
	DefaultMaxAge = 30 * 24 * time.Hour
	// DefaultLockTimeout bounds the wait for another process holding the state file's lock.
	DefaultLockTimeout = 2 * time.Second
)

// lockRetry is how often a busy lock is tried again; holders keep it for a millisecond or so.
const lockRetry = 2 * time.Millisecond

// DefaultStatePath returns where round-robin state lives:
// $XDG_STATE_HOME/sdctl/round-robin.json, or $HOME/.local/state/sdctl/round-robin.json when
// XDG_STATE_HOME is unset or not an absolute path (as the XDG base directory spec asks).
func DefaultStatePath() (string, error) {
	dir, err := xdg.StateHome()
	if err != nil {
		return "", fmt.Errorf("round-robin state: %w", err)
	}
	return filepath.Join(dir, "sdctl", "round-robin.json"), nil
}

// FileCounter is a Counter kept in a JSON file, shared by every sdctl process of a user.
//
// The file maps each key to its next number and the time it was last used:
//
//	{"web": {"next": 3, "used": "2026-01-02T03:04:05Z"}}
//
// Each Next reads, updates and rewrites the file under an exclusive lock on a sidecar file
// (Path + ".lock"), writing a temporary file and renaming it over the old one, so concurrent
// processes each get their own number and a crash never leaves half a file. The file is only a
// counter: one that does not parse starts over empty instead of failing, and keys unused for
// MaxAge are dropped so the file stays small.
type FileCounter struct {
	// Path of the state file; its directory is created when missing. See DefaultStatePath.
	Path string
	// MaxAge after which unused keys are dropped; zero means DefaultMaxAge.
	MaxAge time.Duration
	// LockTimeout bounds the wait for the lock; zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// counterEntry is the state of one key.
type counterEntry struct {
	Next uint64    `json:"next"`
	Used time.Time `json:"used"`
}

// Next returns the key's current number and stores the number after it. Errors (a read-only
// home, a lock held too long) leave the file as it was.
func (c *FileCounter) Next(key string) (uint64, error) {
	n, err := c.next(key)
	if err != nil {
		return 0, fmt.Errorf("state file %s: %w", c.Path, err)
	}
	return n, nil
}

func (c *FileCounter) next(key string) (n uint64, err error) {
	if c.Path == "" {
		return 0, errors.New("no path")
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return 0, err
	}
	lock := flock.New(c.Path+".lock", flock.SetPermissions(0o600))
	timeout := c.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	locked, err := lock.TryLockContext(ctx, lockRetry)
	if err == nil && !locked {
		err = errors.New("not acquired")
	}
	if err != nil {
		_ = lock.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("lock %s held by another process for over %s", lock.Path(), timeout)
		}
		return 0, fmt.Errorf("lock: %w", err)
	}
	defer func() {
		if uerr := lock.Unlock(); uerr != nil && err == nil {
			err = fmt.Errorf("unlock: %w", uerr)
		}
	}()

	state, err := c.read()
	if err != nil {
		return 0, err
	}
	now := c.now()
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	for k, e := range state {
		if now.Sub(e.Used) > maxAge {
			delete(state, k)
		}
	}
	n = state[key].Next
	state[key] = counterEntry{Next: n + 1, Used: now}
	if err := c.write(state); err != nil {
		return 0, err
	}
	return n, nil
}

func (c *FileCounter) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// read loads the state; a missing or unreadable-as-JSON file is an empty state.
func (c *FileCounter) read() (map[string]counterEntry, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]counterEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	var state map[string]counterEntry
	if err := json.Unmarshal(data, &state); err != nil || state == nil {
		// Losing the positions only restarts the rotation; failing would stop resolve.
		return map[string]counterEntry{}, nil //nolint:nilerr // a damaged state file restarts the rotation
	}
	return state, nil
}

// write replaces the state file atomically. It does not fsync: after a crash the worst case is
// an empty or stale counter, which only restarts the rotation.
func (c *FileCounter) write(state map[string]counterEntry) (err error) {
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(c.Path), "."+filepath.Base(c.Path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.Path)
}

var _ Counter = (*FileCounter)(nil)
