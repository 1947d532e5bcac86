package watch

// Starting a watcher: what `sdctl watch` does before the engine runs (wait for Docker, learn
// the node's name, guess the advertised address) and the /metrics and /healthz server.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/hostaddr"
	"github.com/sdctl/sdctl/internal/watch/clock"
	"github.com/sdctl/sdctl/registry"
)

// waitForNode returns the engine's name (see NodeName), asking again every two seconds of clk
// while the engine cannot be reached: in compose the watcher may start before the engine
// answers. It returns "" and no error when ctx ends first. An engine that refuses the caller is
// registry.ErrPermissionDenied; other errors (a bad DOCKER_HOST, TLS files that do not load)
// are returned at once, since waiting cannot help.
func waitForNode(ctx context.Context, clk clock.Clock, docker Docker, callTimeout time.Duration, log hclog.Logger) (string, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, callTimeout)
		node, err := NodeName(nctx, docker)
		cancel()
		if err == nil {
			return node, nil
		}
		if ctx.Err() != nil {
			return "", nil //nolint:nilerr // stopped while waiting: not an error
		}
		if permissionDenied(err) {
			return "", fmt.Errorf("docker %s: %w (run as a user in the socket's group, or as root)", docker.DaemonHost(), registry.ErrPermissionDenied)
		}
		if !client.IsErrConnectionFailed(err) {
			return "", err
		}
		t := clk.NewTimer(2 * time.Second)
		log.Error("waiting for the Docker engine", "docker", docker.DaemonHost(), "error", err)
		if !sleep(ctx, t) {
			return "", nil
		}
	}
}

// permissionDenied reports whether err is the engine's socket refusing the caller. The Docker
// client flattens the dial error into text, so the text is checked when the chain has no
// fs.ErrPermission.
func permissionDenied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied")
}

// AdvertiseAddress guesses the address other hosts reach published ports on: the engine's host
// when daemonHost names a remote one, else this machine's address (hostaddr.Outbound).
func AdvertiseAddress(daemonHost string) string {
	if u, err := url.Parse(daemonHost); err == nil && (u.Scheme == "tcp" || u.Scheme == "http" || u.Scheme == "https") {
		if h := u.Hostname(); h != "" {
			if ip := net.ParseIP(h); ip != nil {
				if !ip.IsLoopback() {
					return ip.String()
				}
			} else if addrs, err := net.LookupHost(h); err == nil && len(addrs) > 0 {
				return addrs[0]
			}
		}
	}
	return hostaddr.Outbound()
}

// InContainer reports whether this process runs inside a Docker container.
func InContainer() bool {
	_, err := os.Stat("/.dockerenv")
	return err == nil
}

// Serve serves m's /metrics and /healthz (ready for the latter) on ln until the returned stop
// is called.
func Serve(ln net.Listener, m *Metrics, ready func() error) (stop func()) {
	srv := &http.Server{Handler: m.Handler(ready), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with ErrServerClosed when stopped
	return func() { _ = srv.Close() }
}
