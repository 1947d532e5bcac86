package dockertest

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/harness"
)

// Spec describes a container for Run (see harness.ContainerSpec). Only Image is required. Run
// adds the dockertest labels to Labels, and names the container sdctl-test-<RunID>-<n> when
// Name is empty.
type Spec = harness.ContainerSpec

// Healthcheck is a container's HEALTHCHECK (see harness.Healthcheck).
type Healthcheck = harness.Healthcheck

// WebHealthcheck checks a WebImage container through "/service-web check" on
// http://127.0.0.1:3000/healthz every interval; one failure makes it unhealthy. Flip it with
// POST /healthz?state=fail (or ok).
func WebHealthcheck(interval time.Duration) *Healthcheck { return harness.WebHealthcheck(interval) }

// Container is a container made by Run: a harness.Container whose methods fail the test.
type Container struct {
	ID     string
	Name   string
	Client *client.Client
}

func (c Container) h() harness.Container { return harness.Container(c) }

// Run creates and starts a container. t.Cleanup removes it, with its volumes, whether the test
// passed or not; when the test failed it logs the container's output first.
func Run(t testing.TB, cli *client.Client, spec Spec) Container {
	t.Helper()
	requireMain(t)
	if spec.Image == "" {
		t.Fatal("dockertest.Run: Spec.Image is empty")
	}
	if spec.Name == "" {
		spec.Name = uniqueName("")
	}
	spec.Labels = Labels(spec.Labels)

	ctx, done := startCreating(apiTimeout)
	defer done()
	hc, err := harness.CreateContainer(ctx, cli, spec)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	c := Container(hc)
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := c.logs(); err == nil && logs != "" {
				t.Logf("dockertest: output of container %s:\n%s", c.Name, logs)
			}
		}
		if err := c.remove(); err != nil {
			t.Errorf("dockertest: %v", err)
		}
	})
	if err := hc.Start(ctx); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return c
}

// Inspect returns the engine's view of the container.
func (c Container) Inspect(t testing.TB) container.InspectResponse {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	info, err := c.h().Inspect(ctx)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return info
}

// HostPort returns the host address ("127.0.0.1:49153") that the container's port ("3000",
// "3000/tcp", "53/udp") is published on, preferring IPv4. A binding on every address is given
// as a loopback address. It fails t when the port is not published.
func (c Container) HostPort(t testing.TB, port string) string {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	addr, err := c.h().HostPort(ctx, port)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return addr
}

// Stop stops the container: SIGTERM, then SIGKILL after timeout (rounded up to seconds).
// A process signalled before it has set up its signal handling gets the default treatment of
// PID 1 (a Go program then exits with status 2): to test a graceful stop, wait until the
// container serves first.
func (c Container) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout+timeout)
	defer cancel()
	if err := c.h().Stop(ctx, timeout); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
}

// Kill sends signal ("SIGKILL", "SIGTERM", "HUP"...) to the container's main process.
func (c Container) Kill(t testing.TB, signal string) {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	if err := c.h().Kill(ctx, signal); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
}

// Start starts the (stopped) container again.
func (c Container) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := apiContext()
	defer cancel()
	if err := c.h().Start(ctx); err != nil {
		t.Fatalf("dockertest: %v", err)
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
	return c.h().Remove(ctx)
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
	return c.h().Logs(ctx)
}
