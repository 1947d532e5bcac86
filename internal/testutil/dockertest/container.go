package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Spec describes a container for Run. Only Image is required.
type Spec struct {
	Image string
	// Name defaults to a unique sdctl-test-<RunID>-<n>.
	Name string
	// Cmd replaces the image's CMD; for WebImage these are the flags of service-web, such as
	// {"-udp", "3000"}.
	Cmd    []string
	Env    []string          // KEY=value
	Labels map[string]string // added to the dockertest labels
	// Expose lists container ports exposed without publishing them, as docker run --expose
	// takes them: "3000", "3000/tcp", "53/udp", "7000-7002".
	Expose []string
	// Publish lists port mappings as docker run -p takes them: "3000/tcp" (a random host port
	// on every address), "127.0.0.1::3000", "8080:3000", "127.0.0.1:5353:53/udp".
	Publish []string
	// PublishAll publishes every exposed port on a random host port, like docker run -P.
	PublishAll bool
	// Network is the network to join: a name (see Network), "host", "none"; empty means the
	// default bridge.
	Network     string
	Healthcheck *Healthcheck
	// AutoRemove makes the engine remove the container when it stops, like docker run --rm.
	AutoRemove bool
}

// Marked returns s with image when s names none, and with the label key=value added to its
// own: how a test gives the containers it runs to its own watcher, among the containers of
// other tests on the same engine.
func (s Spec) Marked(image, key, value string) Spec {
	if s.Image == "" {
		s.Image = image
	}
	s.Labels = maps.Clone(s.Labels)
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[key] = value
	return s
}

// Healthcheck is a container's HEALTHCHECK. Zero durations take the engine's defaults (30s).
type Healthcheck struct {
	// Test is {"CMD", argv...}, {"CMD-SHELL", command} or {"NONE"}.
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int // failures in a row that make the container unhealthy; 0 means 3
}

// WebHealthcheck checks a WebImage container through "/service-web check" on
// http://127.0.0.1:3000/healthz every interval; one failure makes it unhealthy. Flip it with
// POST /healthz?state=fail (or ok).
func WebHealthcheck(interval time.Duration) *Healthcheck {
	return &Healthcheck{
		Test:     []string{"CMD", "/service-web", "check", "-timeout", "2s", "http://127.0.0.1:3000/healthz"},
		Interval: interval,
		Timeout:  5 * time.Second,
		Retries:  1,
	}
}

// Container is a container made by Run.
type Container struct {
	ID     string
	Name   string
	Client *client.Client
}

// Run creates and starts a container. t.Cleanup removes it, with its volumes, whether the test
// passed or not; when the test failed it logs the container's output first.
func Run(t testing.TB, cli *client.Client, spec Spec) Container {
	t.Helper()
	requireMain(t)
	if spec.Image == "" {
		t.Fatal("dockertest.Run: Spec.Image is empty")
	}
	exposed, bindings, err := portConfig(spec.Expose, spec.Publish)
	if err != nil {
		t.Fatalf("dockertest.Run: %v", err)
	}
	name := spec.Name
	if name == "" {
		name = uniqueName("")
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Cmd:          spec.Cmd,
		Env:          spec.Env,
		Labels:       Labels(spec.Labels),
		ExposedPorts: exposed,
	}
	if h := spec.Healthcheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	}
	hcfg := &container.HostConfig{
		NetworkMode:     container.NetworkMode(spec.Network),
		PortBindings:    bindings,
		PublishAllPorts: spec.PublishAll,
		AutoRemove:      spec.AutoRemove,
	}

	ctx, done := startCreating(apiTimeout)
	defer done()
	created, err := cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, name)
	if err != nil {
		t.Fatalf("dockertest: creating container %s from %s: %v", name, spec.Image, err)
	}
	c := Container{ID: created.ID, Name: name, Client: cli}
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := c.logs(); err == nil && logs != "" {
				t.Logf("dockertest: output of container %s:\n%s", name, logs)
			}
		}
		if err := c.remove(); err != nil {
			t.Errorf("dockertest: %v", err)
		}
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dockertest: starting container %s: %v", name, err)
	}
	return c
}

// portConfig turns Spec.Expose and Spec.Publish into the engine's port set and bindings.
func portConfig(expose, publish []string) (nat.PortSet, nat.PortMap, error) {
	exposed, bindings, err := nat.ParsePortSpecs(publish)
	if err != nil {
		return nil, nil, fmt.Errorf("publish %q: %w", publish, err)
	}
	for _, e := range expose {
		proto, ports := nat.SplitProtoPort(e)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, nil, fmt.Errorf("expose %q: protocol %q is not tcp, udp or sctp", e, proto)
		}
		start, end, err := nat.ParsePortRangeToInt(ports)
		if err != nil {
			return nil, nil, fmt.Errorf("expose %q: %w", e, err)
		}
		for p := start; p <= end; p++ {
			port, err := nat.NewPort(proto, strconv.Itoa(p))
			if err != nil {
				return nil, nil, fmt.Errorf("expose %q: %w", e, err)
			}
			exposed[port] = struct{}{}
		}
	}
	if len(exposed) == 0 {
		exposed = nil
	}
	if len(bindings) == 0 {
		bindings = nil
	}
	return exposed, bindings, nil
}

// Inspect returns the engine's view of the container.
func (c Container) Inspect(t testing.TB) container.InspectResponse {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	info, err := c.Client.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatalf("dockertest: inspecting container %s: %v", c.Name, err)
	}
	return info
}

// HostPort returns the host address ("127.0.0.1:49153") that the container's port ("3000",
// "3000/tcp", "53/udp") is published on, preferring IPv4. A binding on every address is given
// as a loopback address. It fails t when the port is not published.
func (c Container) HostPort(t testing.TB, port string) string {
	t.Helper()
	if !strings.Contains(port, "/") {
		port += "/tcp"
	}
	info := c.Inspect(t)
	var bindings []nat.PortBinding
	if info.NetworkSettings != nil {
		bindings = info.NetworkSettings.Ports[nat.Port(port)]
	}
	var best string
	for _, b := range bindings {
		ip := net.ParseIP(b.HostIP)
		switch {
		case b.HostIP == "" || b.HostIP == "0.0.0.0":
			return net.JoinHostPort("127.0.0.1", b.HostPort)
		case ip != nil && ip.To4() != nil:
			return net.JoinHostPort(b.HostIP, b.HostPort)
		case best != "":
		case b.HostIP == "::":
			best = net.JoinHostPort("::1", b.HostPort)
		default:
			best = net.JoinHostPort(b.HostIP, b.HostPort)
		}
	}
	if best == "" {
		t.Fatalf("dockertest: port %s of container %s is not published (bindings %v)", port, c.Name, bindings)
	}
	return best
}

// Stop stops the container: SIGTERM, then SIGKILL after timeout (rounded up to seconds).
// A process signalled before it has set up its signal handling gets the default treatment of
// PID 1 (a Go program then exits with status 2): to test a graceful stop, wait until the
// container serves first.
func (c Container) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	secs := int(math.Ceil(timeout.Seconds()))
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout+timeout)
	defer cancel()
	if err := c.Client.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil {
		t.Fatalf("dockertest: stopping container %s: %v", c.Name, err)
	}
}

// Kill sends signal ("SIGKILL", "SIGTERM", "HUP"...) to the container's main process.
func (c Container) Kill(t testing.TB, signal string) {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	if err := c.Client.ContainerKill(ctx, c.ID, signal); err != nil {
		t.Fatalf("dockertest: sending %s to container %s: %v", signal, c.Name, err)
	}
}

// Start starts the (stopped) container again.
func (c Container) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	if err := c.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dockertest: starting container %s: %v", c.Name, err)
	}
}

// Remove force-removes the container and its volumes now; a container already gone is fine.
func (c Container) Remove(t testing.TB) {
	t.Helper()
	if err := c.remove(); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
}

func (c Container) remove() error {
	ctx, cancel := apiContext()
	defer cancel()
	err := c.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if !gone(err) {
		return fmt.Errorf("removing container %s: %w", c.Name, err)
	}
	// The engine is removing it already (AutoRemove, or a concurrent cleanup): wait for that.
	for {
		_, err := c.Client.ContainerInspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("removing container %s: still there after %s", c.Name, apiTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Logs returns the container's output so far, stdout and stderr interleaved.
func (c Container) Logs(t testing.TB) string {
	t.Helper()
	logs, err := c.logs()
	if err != nil {
		t.Fatalf("dockertest: output of container %s: %v", c.Name, err)
	}
	return logs
}

func (c Container) logs() (string, error) {
	ctx, cancel := apiContext()
	defer cancel()
	r, err := c.Client.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer r.Close()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, r)
	return out.String(), err
}
