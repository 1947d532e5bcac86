package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/sdctl/sdctl/fsutil"
	"github.com/sdctl/sdctl/registry"
)

// store reads and writes the registry document.
//
// Writers serialise on an exclusive flock of the sidecar file <path>.lock and replace the
// document by renaming a fully written and synced temporary file over it, so concurrent
// processes lose no update and a crash at any moment leaves either the old or the new
// document. Readers take no lock: a rename is atomic, so they see one or the other.
//
// Only a regular file is ever read or replaced (see fsutil/): a device node, a FIFO or
// a socket at the path is an error, and nothing is created or changed.
//
// path is the registry path as configured. When it is a symbolic link, each call follows it
// (file), so a backend kept warm between commands writes where the link leads now, and never
// replaces a link made or changed after it started.
type store struct {
	path string
	// cache keeps the last document decoded for a reader, while the file is unchanged.
	cache *docCache
}

func newStore(path string) store {
	return store{path: path, cache: &docCache{}}
}

// file is the document's path for one call: path, or the file it links to now.
func (s *store) file() (string, error) {
	return followLink(s.path)
}

// docCache holds the last document read for Instances, Services and Watch, with the identity
// of the file it came from (device, inode, size, modification and change times). A warm
// backend answers many commands from one process: while the file stays the same, a read is an
// open and an fstat instead of a parse and a validation of every record (for 10,000 instances,
// milliseconds). Every write replaces the file by a rename, so it has a new inode; an edit in
// place changes its times. Readers never modify a document, so the cached one is shared.
type docCache struct {
	mu   sync.Mutex
	key  fileKey
	mode decodeMode
	doc  document
}

// get returns the cached document when it was read from the file key with a mode that covers
// mode.
func (c *docCache) get(key fileKey, mode decodeMode) (document, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key.valid && c.key == key && (c.mode.service == "" || c.mode.service == mode.service) {
		return c.doc, true
	}
	return document{}, false
}

func (c *docCache) put(key fileKey, mode decodeMode, doc document) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.key, c.mode, c.doc = key, mode, doc
}

// read returns the current document; a missing file is an empty registry.
func (s *store) read(mode decodeMode) (document, error) {
	path, err := s.file()
	if err != nil {
		return document{}, err
	}
	return s.readFile(path, mode)
}

// readFile is read of the document at path (the result of file).
func (s *store) readFile(path string, mode decodeMode) (document, error) {
	f, _, err := fsutil.OpenRegular(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return document{}, nil
	case errors.Is(err, fsutil.ErrNotRegular):
		return document{}, notRegular(err)
	case err != nil:
		return document{}, newIOError("read", path, err)
	}
	defer f.Close()
	var key fileKey
	if !mode.raw && s.cache != nil {
		if info, err := f.Stat(); err == nil {
			key = keyOf(info)
		}
		if doc, ok := s.cache.get(key, mode); ok {
			return doc, nil
		}
	}
	data, err := fsutil.ReadLimited(f, path, fsutil.MaxRegistrySize)
	switch {
	case errors.Is(err, fsutil.ErrTooLarge):
		return document{}, &CorruptError{Path: path, Problem: fmt.Sprintf("the file is larger than %s, the most sdctl reads", fsutil.Size(fsutil.MaxRegistrySize))}
	case err != nil:
		return document{}, newIOError("read", path, err)
	}
	doc, err := decodeAt(path, data, mode)
	if err == nil && key.valid {
		s.cache.put(key, mode, doc)
	}
	return doc, err
}

// notRegular is the error for a registry path that is not a regular file: a configuration
// mistake, reported like a bad file.path value.
func notRegular(err error) error {
	return registry.Invalidf("path", "%v", err)
}

// decodeAt is decode of the document read from path, whose errors name it.
func decodeAt(path string, data []byte, mode decodeMode) (document, error) {
	doc, err := decode(data, mode)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Path = path
		}
		return document{}, err
	}
	return doc, nil
}

// errUnchanged tells update that change found nothing to do: the call succeeds without a
// write.
var errUnchanged = errors.New("unchanged")

// update applies change to the current document under the lock and writes the result with
// the next revision, dropping the instances that have expired at now (see record.expired).
// When change fails nothing is written and its error is returned. Records may be raw: change
// must read them through document.decoded.
func (s *store) update(ctx context.Context, now time.Time, change func(*document) error) error {
	path, err := s.file()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return newIOError("create the directory", dir, err)
	}
	unlock, err := s.lock(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()

	// Reading under the lock is what makes this a read-modify-write: every earlier writer has
	// renamed its document into place before releasing the lock. Records the change does not
	// touch may stay raw: the rewrite copies their lines.
	doc, err := s.readFile(path, decodeMode{raw: true})
	if err != nil {
		return err
	}
	if err := change(&doc); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Path == "" {
			ce.Path = path
		}
		return err
	}
	if err := doc.dropExpired(now); err != nil {
		return err
	}
	doc.Revision++
	// The lock may have taken a while; a caller that gave up must not see its change applied.
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.write(path, &doc)
}

// dropExpired removes the records whose TTL ran out more than their deregister-after ago.
// Raw records that may have a deregister-after are decoded, which also lets encode choose the
// format version from decoded records only.
func (d *document) dropExpired(now time.Time) error {
	kept := d.Instances[:0]
	for i := range d.Instances {
		r := &d.Instances[i]
		if r.raw != "" && r.mayBeV3() {
			var err error
			if r, err = d.decoded(i); err != nil {
				return err
			}
		}
		if r.raw == "" && r.expired(now) {
			continue
		}
		kept = append(kept, *r)
	}
	clear(d.Instances[len(kept):])
	d.Instances = kept
	return nil
}

// lock takes the exclusive lock of the document at path (the result of file), waiting until
// ctx ends.
func (s *store) lock(ctx context.Context, path string) (unlock func(), err error) {
	lockPath := path + ".lock"
	// Opening a FIFO would block and a device is nothing to lock. A link leading nowhere is
	// refused, as for the document: opening it to create the lock file would create its target.
	target, err := followLink(lockPath)
	if err != nil {
		return nil, err
	}
	if info, err := os.Stat(target); err == nil {
		if err := fsutil.CheckRegular(lockPath, info); err != nil {
			return nil, notRegular(err)
		}
	}
	// 0666 less the umask, like every new file: users who share the directory must be able to
	// open the lock file too (reading is enough for flock).
	fl := flock.New(lockPath, flock.SetPermissions(0o666))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, newIOError("lock", lockPath, err)
	}
	if ok {
		return func() { _ = fl.Close() }, nil
	}
	// Block in flock(2) rather than polling, so waiters are woken as soon as the holder is done.
	// A waiter abandoned by ctx releases the lock as soon as it gets it.
	done := make(chan error, 1)
	go func() { done <- fl.Lock() }()
	select {
	case err := <-done:
		if err != nil {
			_ = fl.Close()
			return nil, newIOError("lock", lockPath, err)
		}
		return func() { _ = fl.Close() }, nil
	case <-ctx.Done():
		go func() {
			<-done //nolint:errcheck // the lock result no longer matters
			_ = fl.Close()
		}()
		return nil, fmt.Errorf("file registry %s: waiting for another sdctl process to finish writing: %w", path, ctx.Err())
	}
}

// write replaces the document at path (the result of file) with doc. The caller holds the lock. The new file keeps the
// owner, group and mode of the file it replaces (as far as this process may set them: the group
// always, since the users sharing the registry may depend on it); a new file gets 0666 less the
// umask and, in a setgid directory, the directory's group, like files other tools create.
func (s *store) write(path string, doc *document) error {
	dir, base := filepath.Split(path)
	info, err := os.Stat(path)
	switch {
	case err == nil:
		if err := fsutil.CheckRegular(path, info); err != nil {
			return notRegular(err)
		}
		// Replacing the file by rename would bypass a read-only mode a person set on purpose.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return newIOError("write", path, stickyHint(dir, err))
		}
		_ = f.Close()
	case errors.Is(err, fs.ErrNotExist):
		info = nil
	default:
		return newIOError("write", path, err)
	}
	removeStaleTemps(dir, base)

	perm := fs.FileMode(0o666) // less the umask, by the kernel
	if info != nil {
		perm = 0o600 // until it has the old file's owner and mode
	}
	tmp, err := createTemp(dir, tempPrefix(base), perm)
	if err != nil {
		return newIOError("write", path, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if info != nil {
		if err := keepOwner(tmp, info); err != nil {
			return newIOError("keep the group of", path, stickyHint(dir, err))
		}
		if err := tmp.Chmod(info.Mode().Perm()); err != nil {
			return newIOError("keep the mode of", path, err)
		}
	}
	if _, err := tmp.Write(encode(doc)); err != nil {
		return newIOError("write", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return newIOError("write", path, err)
	}
	if err := tmp.Close(); err != nil {
		return newIOError("write", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return newIOError("replace", path, stickyHint(dir, err))
	}
	committed = true
	// Syncing the directory makes the rename itself durable. Some file systems cannot sync a
	// directory; the data is still safe there, only the rename may be replayed late.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// createTemp creates a new file in dir named prefix followed by a random number, with perm
// (less the umask) as os.CreateTemp does with 0600.
func createTemp(dir, prefix string, perm fs.FileMode) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		return f, err
	}
}

// stickyHint explains a permission error in a sticky directory (like /tmp), where only a file's
// owner may replace it, so users cannot share a registry there.
func stickyHint(dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if info, serr := os.Stat(dir); serr != nil || info.Mode()&fs.ModeSticky == 0 {
		return err
	}
	return fmt.Errorf("%w: the directory is sticky (like /tmp), where only a file's owner may replace it; share a registry in a group directory instead, see docs/backends/file.md", fs.ErrPermission)
}

func tempPrefix(base string) string { return "." + base + ".tmp-" }

// removeStaleTemps deletes temporary files left by writers that died before renaming. The
// caller holds the lock, so no live writer owns one.
func removeStaleTemps(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// writable reports why the document cannot be written, or nil: a first write needs to create
// a file in the nearest existing directory on the way to it, later ones to open the file.
func (s *store) writable() error {
	path, err := s.file()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	f, err := os.CreateTemp(dir, ".sdctl-write-test-*")
	if err != nil {
		return newIOError("create files in", dir, err)
	}
	_ = f.Close()
	_ = os.Remove(f.Name())
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return newIOError("write", path, err)
	}
	return nil
}

// errClosed is returned by every method after Close.
func (s *store) errClosed() error {
	return fmt.Errorf("file registry %s: backend is closed: %w", s.path, registry.ErrUnavailable)
}
