package plugins

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/plugins/host"
)

// SocketDirPrefix starts the name of the directory, in the temporary directory, that holds a
// plugin's socket.
const SocketDirPrefix = "sdctl-plugin-"

// socketDirLock is the file in a socket directory that its host holds locked while it lives.
// A host killed with SIGKILL (and its plugin, which dies with it) cannot remove the
// directory; the lock, released by the kernel, tells the next host that it may.
const socketDirLock = ".host.lock"

// staleAfter protects a directory that a host has just created and not yet locked.
// Directories without a lock file come from sdctl versions before the lock; they are removed
// only when much older, as their host may still run.
const (
	staleAfter       = time.Minute
	legacyStaleAfter = 24 * time.Hour
)

// socketDir is a plugin's private socket directory and the lock its host holds in it.
type socketDir struct {
	path string
	lock *flock.Flock
}

// newSocketDir removes the socket directories left behind by dead hosts of this user, then
// creates and locks a new one (mode 0700).
func newSocketDir(log hclog.Logger) (*socketDir, error) {
	removeStaleSocketDirs(os.TempDir(), log)
	path, err := os.MkdirTemp("", SocketDirPrefix)
	if err != nil {
		return nil, err
	}
	lock := flock.New(filepath.Join(path, socketDirLock), flock.SetPermissions(0o600))
	if ok, err := lock.TryLock(); err != nil || !ok {
		_ = os.RemoveAll(path)
		if err == nil {
			err = errors.New("its lock is held by another process")
		}
		return nil, err
	}
	return &socketDir{path: path, lock: lock}, nil
}

// remove deletes the directory and releases its lock. It may be called more than once.
func (d *socketDir) remove() error {
	if d == nil || d.path == "" {
		return nil
	}
	err := os.RemoveAll(d.path)
	_ = d.lock.Close()
	d.path = ""
	return err
}

// removeStaleSocketDirs deletes the socket directories in tmp that belong to this user and whose
// host is gone: their lock can be taken. Errors are logged at debug level and otherwise
// ignored: a leftover directory is untidy, not a reason to fail a command.
func removeStaleSocketDirs(tmp string, log hclog.Logger) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), SocketDirPrefix) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		info, err := os.Lstat(dir)
		if err != nil || !info.IsDir() || !host.OwnedBySelf(info) || now.Sub(info.ModTime()) < staleAfter {
			continue
		}
		lockPath := filepath.Join(dir, socketDirLock)
		if _, err := os.Lstat(lockPath); errors.Is(err, fs.ErrNotExist) {
			if now.Sub(info.ModTime()) >= legacyStaleAfter {
				removeSocketDir(dir, log)
			}
			continue
		}
		lock := flock.New(lockPath, flock.SetFlag(os.O_RDONLY))
		if ok, err := lock.TryLock(); err == nil && ok {
			removeSocketDir(dir, log)
		}
		_ = lock.Close()
	}
}

func removeSocketDir(dir string, log hclog.Logger) {
	if err := os.RemoveAll(dir); err != nil {
		log.Debug("cannot remove a stale plugin socket directory", "path", dir, "error", err)
		return
	}
	log.Debug("removed a stale plugin socket directory", "path", dir)
}
