// Package harness starts real Consul and etcd servers on loopback, and runs containers in the
// Docker engine, for the tests and for the benchmark (tools/bench) alike.
//
// Servers: a single server, a cluster, a server with ACLs, authentication or TLS. Every server
// listens on 127.0.0.1 only, on ports that were free a moment before (a start that loses a
// port to someone else is retried on new ones), keeps its data, config and log in a directory
// the caller gives, and is killed by the kernel should the program that started it die first
// (on Linux).
//
// Docker: the connection to the engine the environment names, the examples/service-web image
// built FROM scratch (nothing is pulled), containers and networks, and the removal of
// everything that carries a label (see docker.go and image.go).
//
// Nothing here depends on package testing: the tests reach it through the thin wrappers in
// internal/testutil/consultest, etcdtest and dockertest, which tie a server's, a container's
// or a network's life to a test.
//
// The server binaries are the versions pinned in tools/consul and tools/etcd, built once and
// cached by scripts/consul-bin.sh and scripts/etcd-bin.sh (see ServerBinary), or the ones named
// by $SDCTL_CONSUL_BIN and $SDCTL_ETCD_BIN.
package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// module is the path in go.mod that ModuleRoot looks for.
const module = "github.com/sdctl/sdctl"

// Logf receives the harness's notes on what it does (a retry on new ports, a slow build). A nil
// Logf drops them.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

// ModuleRoot returns the directory of sdctl's go.mod: the source tree this package was compiled
// from when it is still there, else the first directory from the working directory up that
// holds it.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Dir(filepath.Dir(filepath.Dir(file))) // internal/harness/harness.go
		if isModuleRoot(dir) {
			return dir, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isModuleRoot(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sdctl repository (no go.mod of " + module + " above the working directory)")
		}
		dir = parent
	}
}

func isModuleRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.Contains(data, []byte("module "+module+"\n"))
}

// Server kinds, for ServerBinary.
const (
	Consul = "consul"
	Etcd   = "etcd"
)

// BinaryEnv names, by server kind, the variable that points at a binary to use instead of the
// pinned one.
var BinaryEnv = map[string]string{Consul: "SDCTL_CONSUL_BIN", Etcd: "SDCTL_ETCD_BIN"}

var binaries = struct {
	sync.Mutex
	found map[string]binary
}{found: map[string]binary{}}

type binary struct {
	path string
	err  error
}

// ServerBinary returns the absolute path of the kind server binary (Consul or Etcd): the one
// named by its BinaryEnv variable when that is set, else what scripts/KIND-bin.sh prints. The
// script builds the pinned version on first use, which takes minutes on a cold Go build cache;
// its progress goes to progress (nil: into the error, should it fail). The script runs once per
// process; later calls get its answer.
func ServerBinary(kind string, progress io.Writer) (string, error) {
	env, ok := BinaryEnv[kind]
	if !ok {
		return "", fmt.Errorf("unknown server %q", kind)
	}
	if p := os.Getenv(env); p != "" {
		p, err := Executable(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return p, nil
	}
	binaries.Lock()
	defer binaries.Unlock()
	b, ok := binaries.found[kind]
	if !ok {
		b.path, b.err = buildBinary(kind, progress)
		binaries.found[kind] = b
	}
	return b.path, b.err
}

func buildBinary(kind string, progress io.Writer) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", kind+"-bin.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if progress != nil {
		cmd.Stderr = progress
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, bytes.TrimSpace(stderr.Bytes()))
	}
	path, err := Executable(strings.TrimSpace(stdout.String()))
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	return path, nil
}

// Executable returns path made absolute, or why it is not an executable file.
func Executable(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	return filepath.Abs(path)
}

// DoJSON sends req with c and decodes a 200 answer into out; a nil out drops the answer.
func DoJSON(c *http.Client, req *http.Request, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// ServerEnv is env without the variables that would point a Consul or etcd process, or their
// clients, somewhere else: CONSUL_* and ETCD*.
func ServerEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "ETCD") {
			out = append(out, kv)
		}
	}
	return out
}
