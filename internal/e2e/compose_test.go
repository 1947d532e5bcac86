package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
)

// composeProjectPrefix starts the compose project name of every TestComposeDemo run, followed by
// the run's start time (Unix seconds) and dockertest.RunID, so that runs on one engine never
// share a project and leftovers of killed runs can be told by their age.
const composeProjectPrefix = "sdctl-demo-test-"

// TestComposeDemo runs scripts/compose-demo.sh (make compose-demo): the classic 3 Consul servers +
// Registrator + service-web walkthrough, with sdctl watch in Registrator's place, checked step by
// step by the script. It builds the images (sdctl:latest through make image, the demo images named
// after its own compose project) and removes what it created, its images included. The watcher
// only follows the containers of its project, so other tests' containers do not disturb it.
func TestComposeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three images and runs a 3-server Consul cluster in docker-compose (a minute or two)")
	}
	cli := dockertest.Client(t) // skips without an engine; fails instead under SDCTL_TEST_REQUIRE_ALL=1
	for _, tool := range []string{"bash", "docker", "docker-compose", "make", "go", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, "the compose demo needs "+tool+", which is not installed")
		}
	}
	t.Parallel()
	root := testutil.ModuleRoot(t)
	sweepComposeDemos(t, cli, root)

	project := fmt.Sprintf("%s%d-%s", composeProjectPrefix, time.Now().Unix(), dockertest.RunID)
	// Leave time for the script's teardown before go test's own deadline kills everything.
	timeout := 15 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-time.Minute < timeout {
		timeout = time.Until(d) - time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "bash", filepath.Join("scripts", "compose-demo.sh"))
	cmd.Dir = root
	// The sdctl image gets the project's name too, so the teardown removes it with the others.
	cmd.Env = append(os.Environ(), "SDCTL_DEMO_PROJECT="+project, "SDCTL_IMAGE="+project+"/sdctl:latest")
	// On timeout, SIGTERM: the script's trap removes the project before it exits.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	// Stream the output into the test log: live with -v, and in full when the test fails.
	var summary []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	inSummary := false
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if strings.HasPrefix(line, "== summary") {
			inSummary = true
		}
		if inSummary {
			summary = append(summary, line)
		}
	}
	r.Close()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("scripts/compose-demo.sh (project %s) did not finish within %s", project, timeout.Round(time.Second))
	}
	if err != nil {
		t.Fatalf("scripts/compose-demo.sh (project %s): %v after %s\n%s", project, err, time.Since(start).Round(time.Second), strings.Join(summary, "\n"))
	}
	if len(summary) == 0 || !strings.Contains(summary[len(summary)-1], "all checks passed") {
		t.Fatalf("scripts/compose-demo.sh exited 0 without its summary:\n%s", strings.Join(summary, "\n"))
	}
}

// sweepComposeDemos removes the projects of TestComposeDemo runs that were killed before their
// teardown (their containers, or just their images), once they are older than any run may last.
func sweepComposeDemos(t *testing.T, cli *client.Client, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	projects := map[string]bool{}
	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project"))})
	if err != nil {
		t.Logf("sweeping old compose demo projects: %v", err)
		return
	}
	for _, c := range containers {
		projects[c.Labels["com.docker.compose.project"]] = true
	}
	images, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", composeProjectPrefix+"*/*"))})
	if err != nil {
		t.Logf("sweeping old compose demo projects: %v", err)
		return
	}
	for _, img := range images {
		for _, tag := range img.RepoTags {
			projects[strings.SplitN(tag, "/", 2)[0]] = true
		}
	}
	for p := range projects {
		rest, ok := strings.CutPrefix(p, composeProjectPrefix)
		if !ok {
			continue
		}
		secs, _, _ := strings.Cut(rest, "-")
		started, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || time.Since(time.Unix(started, 0)) < dockertest.SweepAge {
			continue
		}
		cmd := exec.CommandContext(ctx, "bash", filepath.Join("scripts", "compose-demo.sh"), "down")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "SDCTL_DEMO_PROJECT="+p)
		out, err := cmd.CombinedOutput()
		t.Logf("removed the compose demo project %s left by an interrupted run: %v\n%s", p, err, out)
	}
}
