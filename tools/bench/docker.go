package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/harness"
)

// The Docker part: `sdctl watch` follows the real Docker engine and registers the containers'
// ports in a Consul agent the bench starts. The bench builds its own image (no image can be
// pulled): examples/service-web, a static binary, in an image FROM scratch. Everything it
// creates in the engine carries the label io.sdctl.bench=<run ID>, and is removed at the end
// of the part, or on an error or Ctrl-C, by label, so that an object whose creation was under
// way when the run was interrupted goes too.

const (
	benchLabel       = "io.sdctl.bench"
	benchImageRepo   = "sdctl-bench/service-web"
	benchService     = "bench-web"
	benchNode        = "bench" // the watcher's --node-id
	benchPort        = "3000"
	dockerCallTime   = 2 * time.Minute // one engine call
	dockerBuildTime  = 5 * time.Minute
	dockerWorkers    = 16 // concurrent engine calls when many containers start, stop or go
	dockerBatch      = 50 // containers created and started together for the reconcile test
	dockerStopSecs   = 10
	dockerVisibleMax = 30 * time.Second // one container's start → visible, stop → gone
)

// dockerPart is the engine connection and what the bench created in it.
type dockerPart struct {
	cli    *client.Client
	runID  string
	label  string // io.sdctl.bench=<runID>, the filter for everything below
	engine string // "Docker Engine 20.10.24 (API 1.41, linux/amd64), storage driver overlay2"
	goos   string
	goarch string

	image      string // the tag, once built
	imageSize  int64
	imageBuild time.Duration // go build and the engine's build

	srv *server // the Consul agent of this part
	sc  *scenario
	ev  *eventLog

	mu      sync.Mutex
	watcher *watchProc // the running watcher, if any
	count   atomic.Int64
	cleaned []string // what the last cleanup removed, for the progress line
}

// connectDocker connects to the engine the way the watcher does (see harness.ConnectDocker)
// and describes it for the report.
func connectDocker(ctx context.Context) (*dockerPart, error) {
	cli, err := harness.ConnectDocker(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ver, err := cli.ServerVersion(cctx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("the Docker engine at %s: %w", cli.DaemonHost(), err)
	}
	d := &dockerPart{cli: cli, runID: harness.NewRunID(), goos: ver.Os, goarch: ver.Arch}
	d.label = benchLabel + "=" + d.runID
	d.engine = fmt.Sprintf("Docker Engine %s (API %s, %s/%s)", ver.Version, ver.APIVersion, ver.Os, ver.Arch)
	if info, err := cli.Info(cctx); err == nil && info.Driver != "" {
		d.engine += ", storage driver " + info.Driver
	}
	return d, nil
}

// callCtx bounds one engine call. It does not end with ctx: an engine call that has started
// is let finish (the engine would go on creating a container whose client went away), and the
// cleanup, which runs after every call returned, finds what it made by label.
func (d *dockerPart) callCtx(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

// buildImage compiles examples/service-web for the engine's platform and builds the image from
// its Dockerfile with an in-memory build context.
func (d *dockerPart) buildImage(ctx context.Context) error {
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	t0 := time.Now()
	files, err := harness.ServiceWebFiles(ctx, root, d.goos, d.goarch)
	if err != nil {
		return err
	}
	ref := benchImageRepo + ":" + d.runID
	bctx, cancel := d.callCtx(dockerBuildTime)
	defer cancel()
	d.image = ref // from here on the cleanup removes it
	if err := harness.BuildImage(bctx, d.cli, files, ref, map[string]string{benchLabel: d.runID}); err != nil {
		return err
	}
	ii, err := d.cli.ImageInspect(bctx, ref)
	if err != nil {
		return fmt.Errorf("building %s: %w", ref, err)
	}
	d.imageSize = ii.Size
	d.imageBuild = time.Since(t0)
	return nil
}

// benchContainer is one container of the service-web image.
type benchContainer struct {
	harness.Container
}

// instanceID is the ID the watcher gives the container's port: <node>:<name>:<port>.
func (c benchContainer) instanceID() string { return benchNode + ":" + c.Name + ":" + benchPort }

// createContainer creates (does not start) a container like
// `docker create -p 127.0.0.1::3000 -e SERVICE_3000_NAME=bench-web -l io.sdctl.bench=RUN IMAGE`.
func (d *dockerPart) createContainer(kind string) (benchContainer, error) {
	cctx, cancel := d.callCtx(dockerCallTime)
	defer cancel()
	c, err := harness.CreateContainer(cctx, d.cli, harness.ContainerSpec{
		Image:   d.image,
		Name:    fmt.Sprintf("sdctl-bench-%s-%s-%03d", d.runID, kind, d.count.Add(1)),
		Env:     []string{"SERVICE_" + benchPort + "_NAME=" + benchService},
		Labels:  map[string]string{benchLabel: d.runID},
		Publish: []string{"127.0.0.1::" + benchPort},
	})
	return benchContainer{c}, err
}

// inspectDone inspects the container and returns when the engine answered.
func (d *dockerPart) inspectDone(c benchContainer) (time.Time, error) {
	cctx, cancel := d.callCtx(dockerCallTime)
	defer cancel()
	_, err := c.Inspect(cctx)
	return time.Now(), err
}

func (d *dockerPart) startContainer(c benchContainer) error {
	cctx, cancel := d.callCtx(dockerCallTime)
	defer cancel()
	return c.Start(cctx)
}

// stopContainer stops the container with SIGTERM, which service-web answers by exiting 0.
func (d *dockerPart) stopContainer(c benchContainer) error {
	cctx, cancel := d.callCtx(dockerCallTime)
	defer cancel()
	return c.Stop(cctx, dockerStopSecs*time.Second)
}

// removeContainers removes the bench's containers (running or not), dockerWorkers at a time.
func (d *dockerPart) removeContainers(cs []benchContainer) error {
	return forEach(context.Background(), len(cs), dockerWorkers, func(i int) error {
		cctx, cancel := d.callCtx(dockerCallTime)
		defer cancel()
		return cs[i].Remove(cctx)
	})
}

// timedForEach is forEach on dockerWorkers goroutines, and how long it took, from the first
// call to the last return.
func timedForEach(ctx context.Context, n int, fn func(i int) error) (time.Duration, error) {
	t := time.Now()
	err := forEach(ctx, n, dockerWorkers, fn)
	return time.Since(t), err
}

// forEach calls fn for 0..n-1 from up to workers goroutines. Once ctx ends or a call fails it
// hands out no more, and it returns only when every call it made has returned: the first
// error, else ctx's.
func forEach(ctx context.Context, n, workers int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil || failed() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// cleanup stops the watcher and removes every container and image of this run, and the
// event subscription. It is safe to call more than once; it reports what it could not remove.
func (d *dockerPart) cleanup() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	w := d.watcher
	d.watcher = nil
	d.mu.Unlock()
	w.Stop()
	d.cleaned = nil
	var errs []error
	ctx, cancel := d.callCtx(5 * time.Minute)
	defer cancel()
	removed, err := harness.RemoveLabelled(ctx, d.cli, d.label, nil)
	if err != nil {
		errs = append(errs, err)
	}
	if n := len(removed.Containers); n > 0 {
		d.cleaned = append(d.cleaned, plural(n, "container"))
	}
	for _, ref := range removed.Images {
		d.cleaned = append(d.cleaned, "image "+ref)
	}
	if d.image != "" { // the tag also, should the image have lost the label
		_, err := d.cli.ImageRemove(ctx, d.image, image.RemoveOptions{Force: true, PruneChildren: true})
		if err == nil {
			d.cleaned = append(d.cleaned, "image "+d.image)
		} else if !strings.Contains(strings.ToLower(err.Error()), "no such image") {
			errs = append(errs, fmt.Errorf("removing image %s: %w", d.image, err))
		}
	}
	if d.ev != nil {
		d.ev.close()
	}
	// Check that nothing is left.
	f := filters.NewArgs(filters.Arg("label", d.label))
	if cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil && len(cs) > 0 {
		errs = append(errs, fmt.Errorf("%s with label %s left in the engine", plural(len(cs), "container"), d.label))
	}
	if ims, err := d.cli.ImageList(ctx, image.ListOptions{All: true, Filters: f}); err == nil && len(ims) > 0 {
		errs = append(errs, fmt.Errorf("%s with label %s left in the engine", plural(len(ims), "image"), d.label))
	}
	return errors.Join(errs...)
}

// close ends the cleanup for good, at the end of the run (deferred, also on an error or
// Ctrl-C).
func (d *dockerPart) close() {
	if d == nil {
		return
	}
	if err := d.cleanup(); err != nil {
		progress("docker cleanup: %v", err)
	} else if len(d.cleaned) > 0 {
		progress("docker cleanup: removed %s", strings.Join(d.cleaned, ", "))
	}
	d.cli.Close()
}

// eventLog follows the engine's container events for the bench's label and keeps the time of
// each container's actions (start, die ...), as the engine stamped them.
type eventLog struct {
	cancel  context.CancelFunc
	mu      sync.Mutex
	at      map[string]time.Time // container ID + "/" + action → the last such event
	exit    map[string]string    // container ID → the exitCode of its last `die` event
	changed chan struct{}        // closed and replaced on every event
	err     error                // the stream failed
}

func (d *dockerPart) followEvents(ctx context.Context) {
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &eventLog{cancel: cancel, at: map[string]time.Time{}, exit: map[string]string{}, changed: make(chan struct{})}
	d.ev = e
	msgs, errs := d.cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", d.label),
	)})
	go func() {
		for {
			select {
			case m := <-msgs:
				at := time.Unix(0, m.TimeNano)
				if m.TimeNano == 0 {
					at = time.Unix(m.Time, 0)
				}
				e.mu.Lock()
				e.at[m.Actor.ID+"/"+string(m.Action)] = at
				if m.Action == events.ActionDie {
					e.exit[m.Actor.ID] = m.Actor.Attributes["exitCode"]
				}
				close(e.changed)
				e.changed = make(chan struct{})
				e.mu.Unlock()
			case err := <-errs:
				e.mu.Lock()
				if ectx.Err() == nil {
					e.err = fmt.Errorf("docker event stream: %v", err)
				}
				close(e.changed)
				e.changed = make(chan struct{})
				e.mu.Unlock()
				return
			}
		}
	}()
}

func (e *eventLog) close() { e.cancel() }

// exitCode is the exit code the last `die` event of container id reported.
func (e *eventLog) exitCode(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exit[id]
}

// wait returns the time of container id's action, waiting up to timeout for it.
func (e *eventLog) wait(ctx context.Context, id, action string, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		at, ok := e.at[id+"/"+action]
		ch, err := e.changed, e.err
		e.mu.Unlock()
		if ok {
			return at, nil
		}
		if err != nil {
			return time.Time{}, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("no %q event for container %s within %s", action, harness.ShortID(id), timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
