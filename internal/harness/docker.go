package harness

// The Docker engine: the containers, networks and images that the tests (through
// internal/testutil/dockertest) and the benchmark make in it. Each caller labels what it makes
// in a scheme of its own and removes it by label with RemoveLabelled, also after an
// interruption; every engine call here is bounded by the context the caller gives.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// removeWorkers is how many containers RemoveLabelled removes at a time.
const removeWorkers = 16

// ConnectDocker connects to the engine the environment names (DOCKER_HOST and friends, else
// the local socket), as sdctl watch does, checks within 10s that it answers, and settles the
// API version before any concurrent use: the client negotiates lazily and unsynchronised, which
// races when its first calls are concurrent.
func ConnectDocker(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("no Docker engine at %s: %w", cli.DaemonHost(), err)
	}
	cli.NegotiateAPIVersion(ctx)
	return cli, nil
}

// NewRunID returns 8 random hex digits, which a program puts in the names and labels of what
// it makes in the engine to tell it from what other programs, or its earlier runs, made.
func NewRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ContainerSpec describes a container for CreateContainer. Only Image is required.
type ContainerSpec struct {
	Image string
	// Name is the container's name; empty lets the engine pick one.
	Name string
	// Cmd replaces the image's CMD; for the service-web image these are the flags of
	// service-web, such as {"-udp", "3000"}.
	Cmd    []string
	Env    []string // KEY=value
	Labels map[string]string
	// Expose lists container ports exposed without publishing them, as docker run --expose
	// takes them: "3000", "3000/tcp", "53/udp", "7000-7002".
	Expose []string
	// Publish lists port mappings as docker run -p takes them: "3000/tcp" (a random host port
	// on every address), "127.0.0.1::3000", "8080:3000", "127.0.0.1:5353:53/udp".
	Publish []string
	// PublishAll publishes every exposed port on a random host port, like docker run -P.
	PublishAll bool
	// Network is the network to join: a name (see CreateNetwork), "host", "none"; empty means
	// the default bridge.
	Network     string
	Healthcheck *Healthcheck
	// AutoRemove makes the engine remove the container when it stops, like docker run --rm.
	AutoRemove bool
}

// Marked returns s with image when s names none, and with the label key=value added to its
// own: how a test gives the containers it runs to its own watcher, among the containers of
// other tests on the same engine.
func (s ContainerSpec) Marked(image, key, value string) ContainerSpec {
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

// Container is a container made by CreateContainer.
type Container struct {
	ID     string
	Name   string
	Client *client.Client
}

// CreateContainer creates the container spec describes; it does not start it.
func CreateContainer(ctx context.Context, cli *client.Client, spec ContainerSpec) (Container, error) {
	if spec.Image == "" {
		return Container{}, errors.New("creating a container: no image")
	}
	exposed, bindings, err := portConfig(spec.Expose, spec.Publish)
	if err != nil {
		return Container{}, fmt.Errorf("creating container %s: %w", spec.Name, err)
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Cmd:          spec.Cmd,
		Env:          spec.Env,
		Labels:       spec.Labels,
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
	created, err := cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, spec.Name)
	if err != nil {
		return Container{}, fmt.Errorf("creating container %s from %s: %w", spec.Name, spec.Image, err)
	}
	c := Container{ID: created.ID, Name: spec.Name, Client: cli}
	if c.Name == "" {
		c.Name = ShortID(created.ID)
	}
	return c, nil
}

// portConfig turns ContainerSpec.Expose and Publish into the engine's port set and bindings.
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

// Start starts the container (again, when it was stopped).
func (c Container) Start(ctx context.Context) error {
	if err := c.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting container %s: %w", c.Name, err)
	}
	return nil
}

// Inspect returns the engine's view of the container.
func (c Container) Inspect(ctx context.Context) (container.InspectResponse, error) {
	info, err := c.Client.ContainerInspect(ctx, c.ID)
	if err != nil {
		return info, fmt.Errorf("inspecting container %s: %w", c.Name, err)
	}
	return info, nil
}

// HostPort returns the host address ("127.0.0.1:49153") that the container's port ("3000",
// "3000/tcp", "53/udp") is published on, preferring IPv4. A binding on every address is given
// as a loopback address. It fails when the port is not published.
func (c Container) HostPort(ctx context.Context, port string) (string, error) {
	if !strings.Contains(port, "/") {
		port += "/tcp"
	}
	info, err := c.Inspect(ctx)
	if err != nil {
		return "", err
	}
	var bindings []nat.PortBinding
	if info.NetworkSettings != nil {
		bindings = info.NetworkSettings.Ports[nat.Port(port)]
	}
	var best string
	for _, b := range bindings {
		ip := net.ParseIP(b.HostIP)
		switch {
		case b.HostIP == "" || b.HostIP == "0.0.0.0":
			return net.JoinHostPort("127.0.0.1", b.HostPort), nil
		case ip != nil && ip.To4() != nil:
			return net.JoinHostPort(b.HostIP, b.HostPort), nil
		case best != "":
		case b.HostIP == "::":
			best = net.JoinHostPort("::1", b.HostPort)
		default:
			best = net.JoinHostPort(b.HostIP, b.HostPort)
		}
	}
	if best == "" {
		return "", fmt.Errorf("port %s of container %s is not published (bindings %v)", port, c.Name, bindings)
	}
	return best, nil
}

// Stop stops the container: SIGTERM, then SIGKILL after timeout (rounded up to seconds). ctx
// must leave the engine that long and more. A process signalled before it has set up its signal
// handling gets the default treatment of PID 1 (a Go program then exits with status 2).
func (c Container) Stop(ctx context.Context, timeout time.Duration) error {
	secs := int(math.Ceil(timeout.Seconds()))
	if err := c.Client.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stopping container %s: %w", c.Name, err)
	}
	return nil
}

// Kill sends signal ("SIGKILL", "SIGTERM", "HUP"...) to the container's main process.
func (c Container) Kill(ctx context.Context, signal string) error {
	if err := c.Client.ContainerKill(ctx, c.ID, signal); err != nil {
		return fmt.Errorf("sending %s to container %s: %w", signal, c.Name, err)
	}
	return nil
}

// Remove force-removes the container and its volumes; a container already gone is fine, and
// one the engine is removing already (AutoRemove, or a concurrent cleanup) is waited for.
func (c Container) Remove(ctx context.Context) error {
	start := time.Now()
	err := c.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if !gone(err) {
		return fmt.Errorf("removing container %s: %w", c.Name, err)
	}
	for {
		_, err := c.Client.ContainerInspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("removing container %s: still there after %s", c.Name, time.Since(start).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Logs returns the container's output so far, stdout and stderr interleaved.
func (c Container) Logs(ctx context.Context) (string, error) {
	r, err := c.Client.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer r.Close()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, r)
	return out.String(), err
}

// NetworkOptions configures CreateNetwork. The zero value makes an IPv4-only bridge on a subnet
// the engine picks.
type NetworkOptions struct {
	// Subnet is the IPv4 subnet, like "172.30.7.0/24"; empty lets the engine pick one.
	Subnet string
	// IPv6 gives the network an IPv6 subnet as well: IPv6Subnet, or by default a random
	// unique-local fd00:5d:<random>::/64.
	IPv6       bool
	IPv6Subnet string
	// Internal cuts the network off from the outside, like docker network create --internal.
	Internal bool
	Labels   map[string]string
}

// CreateNetwork creates the bridge network name. When the random IPv6 subnet it drew overlaps
// another network's, it draws again, up to 5 times.
func CreateNetwork(ctx context.Context, cli *client.Client, name string, opts NetworkOptions) error {
	for attempt := 0; ; attempt++ {
		create := network.CreateOptions{
			Driver:   "bridge",
			Internal: opts.Internal,
			Labels:   opts.Labels,
		}
		var pools []network.IPAMConfig
		if opts.Subnet != "" {
			pools = append(pools, network.IPAMConfig{Subnet: opts.Subnet})
		}
		random := false
		if opts.IPv6 {
			enable := true
			create.EnableIPv6 = &enable
			subnet := opts.IPv6Subnet
			if subnet == "" {
				subnet, random = randomULA(), true
			}
			pools = append(pools, network.IPAMConfig{Subnet: subnet})
		}
		if len(pools) > 0 {
			create.IPAM = &network.IPAM{Driver: "default", Config: pools}
		}
		_, err := cli.NetworkCreate(ctx, name, create)
		if err == nil {
			return nil
		}
		if !random || attempt >= 5 || !strings.Contains(err.Error(), "overlap") {
			return fmt.Errorf("creating network %s: %w", name, err)
		}
	}
}

// randomULA returns fd00:5d:<16 random bits>::/64.
func randomULA() string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("fd00:5d:%x::/64", uint16(b[0])<<8|uint16(b[1]))
}

// RemoveNetwork removes the network name (or ID); a network already gone is fine.
func RemoveNetwork(ctx context.Context, cli *client.Client, name string) error {
	if err := cli.NetworkRemove(ctx, name); err != nil && !gone(err) {
		return fmt.Errorf("removing network %s: %w", name, err)
	}
	return nil
}

// Removed names what RemoveLabelled removed: containers and networks by name, images by their
// first tag, else by ID.
type Removed struct {
	Containers, Networks, Images []string
}

// RemoveLabelled removes the containers (running or not, with their volumes), then the
// networks, then the images that carry label ("key" or "key=value") and for which pick, given
// an object's labels and creation time, returns true; a nil pick takes them all. An object
// already gone, or on its way out, is no error.
func RemoveLabelled(ctx context.Context, cli *client.Client, label string, pick func(labels map[string]string, created time.Time) bool) (Removed, error) {
	if pick == nil {
		pick = func(map[string]string, time.Time) bool { return true }
	}
	var (
		r    Removed
		errs []error
		f    = filters.NewArgs(filters.Arg("label", label))
	)
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("listing containers: %w", err)
	}
	cs = slices.DeleteFunc(cs, func(c container.Summary) bool { return !pick(c.Labels, time.Unix(c.Created, 0)) })
	cerrs := make([]error, len(cs))
	sem := make(chan struct{}, removeWorkers)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cerrs[i] = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}()
	}
	wg.Wait()
	for i, c := range cs {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		switch err := cerrs[i]; {
		case err == nil:
			r.Containers = append(r.Containers, name)
		case !gone(err):
			errs = append(errs, fmt.Errorf("removing container %s: %w", name, err))
		}
	}

	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return r, errors.Join(append(errs, fmt.Errorf("listing networks: %w", err))...)
	}
	for _, n := range ns {
		if !pick(n.Labels, n.Created) {
			continue
		}
		switch err := cli.NetworkRemove(ctx, n.ID); {
		case err == nil:
			r.Networks = append(r.Networks, n.Name)
		case !gone(err):
			errs = append(errs, fmt.Errorf("removing network %s: %w", n.Name, err))
		}
	}

	is, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		return r, errors.Join(append(errs, fmt.Errorf("listing images: %w", err))...)
	}
	// Children first (an image with children cannot be removed), which also removes their
	// untagged parents; the newest first among either.
	parents := map[string]bool{}
	for _, i := range is {
		parents[i.ParentID] = true
	}
	slices.SortStableFunc(is, func(a, b image.Summary) int {
		if parents[a.ID] != parents[b.ID] {
			if parents[a.ID] {
				return 1
			}
			return -1
		}
		return cmp.Compare(b.Created, a.Created)
	})
	for _, i := range is {
		if !pick(i.Labels, time.Unix(i.Created, 0)) {
			continue
		}
		_, err := cli.ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		switch {
		case err == nil:
			name := i.ID
			if len(i.RepoTags) > 0 {
				name = i.RepoTags[0]
			}
			r.Images = append(r.Images, name)
		case !gone(err):
			errs = append(errs, fmt.Errorf("removing image %s: %w", i.ID, err))
		}
	}
	return r, errors.Join(errs...)
}

// gone reports whether err says the object is already gone or on its way out.
func gone(err error) bool {
	return cerrdefs.IsNotFound(err) || (cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"))
}

// ShortID is the first 12 characters of an engine ID, as docker ps shows it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
