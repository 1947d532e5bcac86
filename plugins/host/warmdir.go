package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sdctl/sdctl/plugins/wire"
)

// Environment variables of a warm backend process, set by the host that starts it.
const (
	// EnvWarmSocket is the path of the Unix socket a warm backend listens on. Its presence
	// switches Serve from the go-plugin handshake to warm mode.
	EnvWarmSocket = "SDCTL_PLUGIN_WARM_SOCKET"
	// EnvWarmIdle is the idle timeout after which a warm backend exits.
	EnvWarmIdle = "SDCTL_PLUGIN_WARM_IDLE"
	// EnvLogLevel carries the host's --log-level to every backend process.
	EnvLogLevel = "SDCTL_PLUGIN_LOG_LEVEL"
	// MagicCookieKey and MagicCookieValue are go-plugin's handshake cookie, shared by sdctl
	// and every backend (plugins.Handshake). It only keeps people from running a backend by
	// hand by mistake; it is not a security measure.
	MagicCookieKey   = "SDCTL_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "5d0c7a1e2f3b4c6d8e9f00112233445566778899aabbccddeeff0a1b2c3d4e5f"
)

// WarmReadyFD is the file descriptor (the first of ExtraFiles) on which a warm backend tells
// the host that it listens, with the line "ready".
const WarmReadyFD = 3

// warmSockSuffix ends the name of a warm backend's socket: NAME-KEY.sock.
const warmSockSuffix = ".sock"

// DefaultRuntimeDir is where warm backends' sockets live: $XDG_RUNTIME_DIR/sdctl when that is
// set (a per-user tmpfs the system clears at logout), else a per-user directory in the
// temporary directory.
func DefaultRuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "sdctl")
	}
	return filepath.Join(os.TempDir(), "sdctl-"+strconv.Itoa(os.Geteuid()))
}

// privateDir creates dir (mode 0700) if needed and refuses to use it unless it is a real
// directory (not a symbolic link) owned by this user that no one else may enter: in a shared
// temporary directory another user could have created it first.
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	switch {
	case !info.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !OwnedBySelf(info):
		return fmt.Errorf("%s belongs to another user", dir)
	case info.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is accessible to other users (mode %04o; want 0700)", dir, info.Mode().Perm())
	}
	return nil
}

// warmEnvNames are the environment variables a warm backend inherits, by exact name or by
// prefix (ending in "_"). A warm backend serves many commands, so only what can change its
// behaviour is passed on, and all of it is part of the backend's key.
var warmEnvNames = []string{
	"PATH", "HOME", "USER", "LANG", "LC_", "TZ", "TMPDIR", "XDG_", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"CONSUL_", "ETCD_", "ETCDCTL_", "GRPC_", "GODEBUG", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "SDCTL_",
}

// warmEnv returns the sorted environment a warm backend gets.
func warmEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name == EnvWarmSocket || name == EnvWarmIdle || name == EnvLogLevel {
			continue
		}
		for _, n := range warmEnvNames {
			if name == n || (strings.HasSuffix(n, "_") && strings.HasPrefix(name, n)) {
				out = append(out, kv)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// FileIdentity names one version of a file: replacing the file changes it.
func FileIdentity(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d/%s", info.Size(), info.ModTime().UnixNano(), inodeOf(info))
}

// warmKey identifies a warm backend: the same key means a process that behaves exactly as a
// fresh one would for this command. It covers the user, the backend's executable and sdctl's
// own (their path and file identity: a rebuilt binary gets a new backend), the protocol, the
// config section, the environment passed on, the working directory (relative paths) and the
// umask. It is a SHA-256 digest, so a token in the section never reaches the disk in clear.
func warmKey(cand Candidate, hostExe string, section map[string]any, env []string) (string, error) {
	cfg, err := json.Marshal(section) // map keys are sorted: the encoding is canonical
	if err != nil {
		return "", fmt.Errorf("encode backend config: %w", err)
	}
	cwd, _ := os.Getwd()
	h := sha256.New()
	for _, part := range []string{
		"sdctl-warm-1", strconv.Itoa(os.Geteuid()), strconv.Itoa(wire.ProtocolVersion), strconv.Itoa(wire.ProtocolMinor),
		cand.Name, cand.Path, FileIdentity(cand.Path), hostExe, FileIdentity(hostExe),
		string(cfg), cwd, currentUmask(), strings.Join(env, "\x00"),
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// WarmBackend is a warm backend process found in the runtime directory.
type WarmBackend struct {
	Name   string `json:"name"`
	Pid    int    `json:"pid"`
	Socket string `json:"socket"`
	// Since is when the backend started listening.
	Since string `json:"since"`
}

// warmSockets lists the sockets in dir, by backend name ("" = all).
func warmSockets(dir, name string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type()&fs.ModeSocket == 0 || !strings.HasSuffix(e.Name(), warmSockSuffix) {
			continue
		}
		if n, ok := warmSocketName(e.Name()); ok && (name == "" || n == name) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// warmSocketName returns the backend name in a socket's file name NAME-KEY.sock.
func warmSocketName(file string) (string, bool) {
	base := strings.TrimSuffix(file, warmSockSuffix)
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", false
	}
	return base[:i], true
}
