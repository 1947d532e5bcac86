package file

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sdctl/sdctl/registry"
)

const (
	// debounce gathers a burst of file events (several quick writes, an editor's save) into one
	// read, while keeping the delay from a write to its event far below 100 ms.
	debounce = 15 * time.Millisecond
	// corruptGrace is how long Watch tolerates an unreadable document before failing: editors
	// that save in place briefly leave a truncated file behind.
	corruptGrace = 2 * time.Second
)

// Watch calls fn with the instances of req.Name (all when empty) whenever that set changes:
// on writes by any process, on hand edits, and when a TTL runs out.
//
// Event.Index is the document's revision. A change of health caused only by the passing of
// time (an expired TTL) writes nothing, so its event repeats the revision of the previous one.
// Heartbeats alone produce no event: they move Expires but change neither membership nor
// health.
//
// Changes are noticed through file system notifications on the directory (the document is
// replaced by rename, so watching the file itself would lose track of it), backed by a stat of
// the file every PollInterval for file systems that deliver no notifications.
func (b *Backend) Watch(ctx context.Context, req registry.WatchRequest, fn func(registry.Event) error) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if req.Name != "" {
		if err := registry.ValidateName(req.Name); err != nil {
			return err
		}
	}
	w := &watch{b: b, name: req.Name, fn: fn}
	watched := b.watchedPath()
	notify, events, errs := b.notifier(watched)
	if notify != nil {
		defer func() { _ = notify.Close() }()
	}

	// Stat before reading: a write landing in between then shows up as a changed file at the
	// next poll instead of going unnoticed.
	w.sig = b.store.signature()
	st, err := w.state()
	if err != nil {
		return err
	}
	if req.Index == 0 || req.Index != st.revision {
		if err := fn(registry.Event{Index: st.revision, Instances: st.instances}); err != nil {
			return err
		}
	}
	w.last = st.instances

	poll := time.NewTicker(b.poll)
	defer poll.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	settling := false
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	w.armExpiry(expiry, st.nextExpiry)

	base := filepath.Base(watched)
	for {
		var check bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.closed:
			return b.store.errClosed()
		case ev, ok := <-events:
			if !ok {
				events, errs = nil, nil // the notifier failed: polling carries on alone
				continue
			}
			if filepath.Base(ev.Name) == base && !settling {
				settling = true
				settle.Reset(debounce)
			}
		case <-errs: //nolint:errcheck // the error itself says nothing useful
			// An overflowed event queue may have hidden a change: look.
			check = true
		case <-settle.C:
			settling = false
			check = true
		case <-poll.C:
			check = !w.corruptSince.IsZero() || !w.sig.equal(b.store.signature())
		case <-expiry.C:
			check = true
		}
		if !check {
			continue
		}
		if err := w.update(expiry); err != nil {
			return err
		}
	}
}

// watch is the state of one Watch call.
type watch struct {
	b    *Backend
	name string
	fn   func(registry.Event) error
	// last is the set most recently sent (or skipped because the caller had it).
	last []registry.Instance
	sig  fileSignature
	// corruptSince is when the document became unreadable; zero while it is fine.
	corruptSince time.Time
}

type watchState struct {
	revision   uint64
	instances  []registry.Instance
	nextExpiry time.Time
}

func (w *watch) state() (watchState, error) {
	doc, err := w.b.store.read(decodeMode{service: w.name})
	if err != nil {
		return watchState{}, err
	}
	now := w.b.now()
	st := watchState{revision: doc.Revision, instances: selectInstances(&doc, registry.Query{Name: w.name}, now)}
	// The set changes when a TTL runs out and again when deregister-after has passed.
	for i := range doc.Instances {
		r := &doc.Instances[i]
		if r.TTL <= 0 || (w.name != "" && r.Name != w.name) {
			continue
		}
		for _, t := range [...]time.Time{r.Expires, r.Expires.Add(r.DeregisterAfter)} {
			if t.After(now) && (st.nextExpiry.IsZero() || t.Before(st.nextExpiry)) {
				st.nextExpiry = t
			}
		}
	}
	return st, nil
}

// update rereads the document and sends an event if the watched set changed.
func (w *watch) update(expiry *time.Timer) error {
	w.sig = w.b.store.signature() // before reading, as in Watch

	st, err := w.state()
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		if w.corruptSince.IsZero() {
			w.corruptSince = time.Now()
		}
		if time.Since(w.corruptSince) > corruptGrace {
			return err
		}
		return nil
	case err != nil:
		return err
	}
	w.corruptSince = time.Time{}
	w.armExpiry(expiry, st.nextExpiry)
	if sameInstances(w.last, st.instances) {
		return nil
	}
	w.last = st.instances
	return w.fn(registry.Event{Index: st.revision, Instances: st.instances})
}

func (w *watch) armExpiry(t *time.Timer, next time.Time) {
	t.Stop()
	if !next.IsZero() {
		// A millisecond past the deadline, so the instance is certainly expired when we look.
		t.Reset(next.Sub(w.b.now()) + time.Millisecond)
	}
}

// sameInstances compares what a watcher cares about: membership, addresses, labels and
// health, not the Expires that every heartbeat moves.
func sameInstances(a, b []registry.Instance) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Instance) bool {
		return x.ID == y.ID && x.Name == y.Name && x.Address == y.Address && x.Port == y.Port &&
			x.Weight == y.Weight && x.Drain == y.Drain && x.TTL == y.TTL && x.Health == y.Health &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}

// notifier watches the document's directory, creating it if need be so that a watch started
// before the first registration still hears it. It returns nil channels (which never deliver)
// when notifications are unavailable; polling then does the work.
func (b *Backend) notifier(path string) (*fsnotify.Watcher, <-chan fsnotify.Event, <-chan error) {
	if b.pollOnly {
		return nil, nil, nil
	}
	dir := filepath.Dir(path)
	_ = os.MkdirAll(dir, 0o700)
	nw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, nil
	}
	if err := nw.Add(dir); err != nil {
		_ = nw.Close()
		return nil, nil, nil
	}
	return nw, nw.Events, nw.Errors
}

// watchedPath is the file whose directory Watch listens to: where the registry path leads when
// the watch starts. A symbolic link changed during a watch is noticed by polling.
func (b *Backend) watchedPath() string {
	if path, err := b.store.file(); err == nil {
		return path
	}
	return b.store.path
}

// fileSignature identifies a version of the document for polling: a rename changes the
// inode, an in-place edit the size or modification time.
type fileSignature struct {
	info fs.FileInfo
}

func (s *store) signature() fileSignature {
	info, _ := os.Stat(s.path)
	return fileSignature{info: info}
}

func (a fileSignature) equal(b fileSignature) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}
