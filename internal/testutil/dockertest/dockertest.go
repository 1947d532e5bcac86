// Package dockertest runs tests against the real Docker engine named by the environment
// (DOCKER_HOST, or the default /var/run/docker.sock): it builds the examples/service-web image
// FROM scratch (nothing is ever pulled), runs containers and creates networks, and proxies the
// engine socket so that a test can cut the connection under a client. The engine work is
// internal/harness's; this package ties what it makes to a test and to the test process.
//
// Everything it creates carries the labels io.sdctl.test=1 and io.sdctl.test.run=<RunID>.
// Containers and networks are removed by t.Cleanup; the image, shared by all the tests of a
// process, is removed when they are done, by Main. A package that uses dockertest must
// therefore call Main from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }
//
// Main also removes what earlier runs left behind when they were interrupted (see Sweep).
//
// Without an engine the tests skip, or fail when SDCTL_TEST_REQUIRE_ALL=1.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
)

const (
	// LabelTest marks every object dockertest creates, with the value "1".
	LabelTest = "io.sdctl.test"
	// LabelRun holds the RunID of the test process that created an object.
	LabelRun = "io.sdctl.test.run"

	// SweepAge is how old an object of another run must be before Sweep removes it: older than
	// any test process is allowed to run.
	SweepAge = time.Hour

	apiTimeout = 30 * time.Second // one engine call
)

// RunID identifies this test process; it is part of every name and label dockertest makes.
var RunID = harness.NewRunID()

var (
	mainCalled atomic.Bool // Main runs the tests
	touched    atomic.Bool // this process reached the engine, so Main has to clean up
	counter    atomic.Int64

	// Creations hold creating for reading. On SIGINT or SIGTERM, Main takes it for writing:
	// it waits for the creations under way (cancelling them would not stop the engine from
	// completing them, after Main has looked) and blocks new ones while it removes what the
	// run made.
	creating sync.RWMutex

	// tempDirs are removed by t.Cleanup, or by an interrupted Main, which skips the cleanups.
	tempDirs sync.Map
)

// startCreating returns the context for creating engine objects, and the func to call when
// done with it.
func startCreating(timeout time.Duration) (context.Context, func()) {
	creating.RLock()
	touched.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return ctx, func() {
		cancel()
		creating.RUnlock()
	}
}

// Labels returns the labels that mark an object as made by this test process, merged with
// extra (which cannot override them).
func Labels(extra map[string]string) map[string]string {
	l := make(map[string]string, len(extra)+2)
	for k, v := range extra {
		l[k] = v
	}
	l[LabelTest] = "1"
	l[LabelRun] = RunID
	return l
}

// uniqueName returns sdctl-test-<run>-<n>, different on every call.
func uniqueName(kind string) string {
	if kind != "" {
		kind += "-"
	}
	return fmt.Sprintf("sdctl-test-%s%s-%d", kind, RunID, counter.Add(1))
}

func requireMain(t testing.TB) {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("dockertest: the package's TestMain must call dockertest.Main, which removes what the tests created")
	}
}

// Client connects to the engine named by the environment (see harness.ConnectDocker). When the
// engine is unreachable it skips t (fails it under SDCTL_TEST_REQUIRE_ALL=1). The client is
// closed by t.Cleanup.
func Client(t testing.TB) *client.Client {
	t.Helper()
	requireMain(t)
	cli, err := harness.ConnectDocker(context.Background())
	if err != nil {
		testutil.SkipUnlessRequired(t, "dockertest: "+err.Error())
	}
	touched.Store(true)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Main runs the tests of m, then removes every container, network and image this process
// created (those labelled with its RunID), and returns the exit status for os.Exit: m.Run's, or
// 1 when the tests passed but the cleanup failed. Before the tests it calls Sweep, and on
// SIGINT or SIGTERM it cleans up before exiting.
func Main(m *testing.M) int {
	mainCalled.Store(true)
	if cli, err := harness.ConnectDocker(context.Background()); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := Sweep(ctx, cli); err != nil {
			fmt.Fprintf(os.Stderr, "dockertest: sweeping earlier runs: %v\n", err)
		}
		cancel()
		cli.Close()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			signal.Reset(syscall.SIGINT, syscall.SIGTERM) // a second signal kills at once
			fmt.Fprintf(os.Stderr, "dockertest: %v: removing the objects of run %s\n", s, RunID)
			creating.Lock()
			if err := cleanupRun(); err != nil {
				fmt.Fprintf(os.Stderr, "dockertest: %v\n", err)
			}
			tempDirs.Range(func(dir, _ any) bool {
				os.RemoveAll(dir.(string))
				return true
			})
			os.Exit(1)
		case <-done:
		}
	}()

	code := m.Run()
	signal.Stop(sig)
	close(done)
	if err := cleanupRun(); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// cleanupRun removes what this process created, if it ever reached the engine.
func cleanupRun() error {
	if !touched.Load() {
		return nil
	}
	cli, err := harness.ConnectDocker(context.Background())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = harness.RemoveLabelled(ctx, cli, LabelRun+"="+RunID, nil)
	return err
}

// Sweep removes the containers, networks and images that other runs left behind: those
// labelled io.sdctl.test=1, not of this run, and older than SweepAge. Main calls it.
func Sweep(ctx context.Context, cli *client.Client) error {
	now := time.Now()
	_, err := harness.RemoveLabelled(ctx, cli, LabelTest+"=1", func(labels map[string]string, created time.Time) bool {
		return stale(labels, created, now)
	})
	return err
}

// stale reports whether an object with labels, created at created, is a leftover Sweep removes.
func stale(labels map[string]string, created, now time.Time) bool {
	return labels[LabelTest] == "1" && labels[LabelRun] != RunID && now.Sub(created) > SweepAge
}

func apiContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), apiTimeout)
}
