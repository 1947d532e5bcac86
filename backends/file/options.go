package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sdctl/sdctl/fsutil"
	"github.com/sdctl/sdctl/registry"
)

// Name is the backend's name in configuration, on the command line and in Info.
const Name = "file"

const (
	defaultPollInterval = time.Second
	// minPollInterval keeps a typo like "1ns" from turning a watch into a busy loop.
	minPollInterval = 10 * time.Millisecond
)

// Options configures the file backend; the keys are those of the "file" config section.
type Options struct {
	// Path is the registry document; DefaultPath when empty. A leading "~/" means the home
	// directory.
	Path string `mapstructure:"path"`
	// PollInterval is how often Watch stats the file, as a fallback for file systems without
	// change notifications (NFS, some container mounts).
	PollInterval time.Duration `mapstructure:"poll-interval"`
	// Version is reported by Info and recorded in the document ("" when unset). It is set by
	// the program that embeds the backend, not by configuration.
	Version string `mapstructure:"-"`
}

// OptionSchema documents the keys of the "file" config section.
func OptionSchema() []registry.Option {
	return []registry.Option{
		{
			Key:     "path",
			Default: "$XDG_DATA_HOME/sdctl/registry.json",
			Help: "Registry document (JSON, one instance per line). Without XDG_DATA_HOME, " +
				"~/.local/share/sdctl/registry.json. Processes sharing a registry must use the same path.",
		},
		{
			Key:     "poll-interval",
			Default: defaultPollInterval.String(),
			Help: "How often watches check the file for changes in addition to file system " +
				"notifications, which some network and container file systems do not deliver.",
		},
	}
}

// New decodes the "file" config section and opens the backend. Bad values are
// registry.FieldErrors naming the key.
func New(section map[string]any) (*Backend, error) {
	return NewWith(section, Options{})
}

// NewWith is New with defaults: the keys the section sets override them. A program embedding
// the backend passes its own default path and version this way.
func NewWith(section map[string]any, defaults Options) (*Backend, error) {
	opts := defaults
	if err := registry.DecodeOptions(section, &opts); err != nil {
		return nil, err
	}
	return Open(opts)
}

// resolve validates opts and fills in defaults.
func (opts Options) resolve() (Options, error) {
	switch {
	case opts.PollInterval == 0:
		opts.PollInterval = defaultPollInterval
	case opts.PollInterval < minPollInterval:
		return opts, registry.Invalidf("poll-interval", "%s is too short (at least %s)", opts.PollInterval, minPollInterval)
	}

	path, err := expandPath(opts.Path)
	if err != nil {
		return opts, err
	}
	// The path is kept as given: when it is a symbolic link, every call follows it anew (see
	// followLink), so that a backend kept warm between commands sees the link change.
	target, err := followLink(path)
	if err != nil {
		return opts, err
	}
	info, err := os.Stat(target)
	switch {
	case err == nil && info.IsDir():
		return opts, registry.Invalidf("path", "%s is a directory; give the path of the registry file inside it", target)
	case err == nil && !info.Mode().IsRegular():
		return opts, registry.Invalidf("path", "%v", fsutil.CheckRegular(target, info))
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission):
		return opts, registry.Invalidf("path", "%s: %v", target, err)
	}
	opts.Path = path
	return opts, nil
}

// followLink returns the file the registry path names: path itself, or, when path is a
// symbolic link, the file the link leads to. A symlinked document (kept in a dotfiles
// repository, say) stays a symlink: writes go to its target, which rename would otherwise
// replace with a regular file. A link that leads nowhere is refused rather than replaced or
// followed to create its target: the link may be stale, or point somewhere the user did not
// mean to write.
func followLink(path string) (string, error) {
	// A path that cannot be examined is left to the open or write that follows, which reports
	// why.
	if li, err := os.Lstat(path); err != nil || li.Mode()&fs.ModeSymlink == 0 {
		return path, nil //nolint:nilerr // see above
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		dest, _ := os.Readlink(path)
		return "", registry.Invalidf("path", "%s is a symbolic link to %s, which does not exist or loops; sdctl follows links but does not create their targets: create the file or remove the link", path, dest)
	}
	return target, nil
}

func expandPath(path string) (string, error) {
	if path == "" {
		return "", registry.Invalidf("path", "no registry file given (set file.path)")
	}
	if path == "~" || strings.HasPrefix(path, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", registry.Invalidf("path", "cannot expand ~ in %q: %v", path, err)
		}
		path = filepath.Join(home, path[1:])
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", registry.Invalidf("path", "%q: %v", path, err)
	}
	return abs, nil
}
