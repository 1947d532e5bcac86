package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Member health values reported by ClusterStatus.
const (
	healthOK         = "ok"
	healthReadOnly   = "read-only"
	healthCorrupt    = "corrupt"
	healthUnreadable = "unreadable"
)

// ClusterStatus describes the file as a one-member cluster: the member is this host, its
// address the document, and its details what a person checks when something is wrong (size,
// revision, whether this process can write it). Problems are reported in Health and Notes, not
// as an error, since showing them is the point of the command; a file that cannot be read
// cannot lead, so the cluster then has no leader.
func (b *Backend) ClusterStatus(ctx context.Context) (registry.ClusterStatus, error) {
	if err := b.begin(ctx); err != nil {
		return registry.ClusterStatus{}, err
	}
	// The file a symbolic link leads to is the one a person checks. A link leading nowhere is
	// a bad file.path, refused as when the backend is opened.
	path, err := b.store.file()
	if err != nil {
		return registry.ClusterStatus{}, err
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	m := registry.Member{
		Name:    host,
		Address: path,
		Role:    "leader",
		Leader:  true,
		Health:  healthOK,
		Version: b.version,
		Details: map[string]string{"path": path, "size": "0", "instances": "0", "revision": "0"},
	}
	var notes []string
	info, err := os.Stat(path)
	switch {
	case err == nil:
		m.Details["size"] = strconv.FormatInt(info.Size(), 10)
		m.Details["modified"] = info.ModTime().UTC().Format(time.RFC3339Nano)
	case errors.Is(err, fs.ErrNotExist):
		notes = append(notes, "the file does not exist yet; the first registration creates it")
	}

	// Counting needs no decoded records.
	doc, err := b.store.read(decodeMode{raw: true})
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		m.Health = healthCorrupt
		notes = append(notes, err.Error())
	case err != nil:
		m.Health = healthUnreadable
		notes = append(notes, err.Error())
	default:
		m.Details["instances"] = strconv.Itoa(len(doc.Instances))
		m.Details["revision"] = strconv.FormatUint(doc.Revision, 10)
	}

	m.Details["writable"] = "true"
	if err := b.store.writable(); err != nil {
		m.Details["writable"] = "false"
		if m.Health == healthOK {
			m.Health = healthReadOnly
		}
		notes = append(notes, err.Error())
	}
	leader := path
	if m.Health == healthCorrupt || m.Health == healthUnreadable {
		m.Role, m.Leader, leader = "member", false, ""
	}
	return registry.ClusterStatus{Backend: Name, Leader: leader, Members: []registry.Member{m}, Notes: notes}, nil
}

// Info names the backend, its version and options, and what it supports.
func (b *Backend) Info(ctx context.Context) (registry.Info, error) {
	if err := b.begin(ctx); err != nil {
		return registry.Info{}, err
	}
	return registry.Info{Name: Name, Version: b.version, Capabilities: Capabilities(), Options: OptionSchema()}, nil
}
