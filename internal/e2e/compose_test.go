package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/dockertest"
)

// composeProjectPrefix starts the compose project name of every TestComposeDemo run, followed by
// the run's start time (Unix seconds) and dockertest.RunID, so that runs on one engine never
// share a project and leftovers of killed runs can be told by their age.
const composeProjectPrefix = "sdctl-demo-test-"

// TestComposeDemo checks the walkthrough of docs/tutorial.md (make compose-demo): 3 Consul
// servers, a client agent, sdctl watch in Registrator's place and service-web scaled to three,
// in docker-compose. scripts/compose-demo.sh builds the images (sdctl through make image, the
// demo images named after the test's own compose project) and removes them at the end; the
// test drives docker-compose and checks each step. The watcher only follows the containers of
// its project, so other tests' containers do not disturb it.
func TestComposeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three images and runs a 3-server Consul cluster in docker-compose (a minute or two)")
	}
	cli := dockertest.Client(t) // skips without an engine; fails instead under SDCTL_TEST_REQUIRE_ALL=1
	for _, tool := range []string{"bash", "docker", "docker-compose", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, "the compose demo needs "+tool+", which is not installed")
		}
	}
	t.Parallel()
	root := testutil.ModuleRoot(t)
	sweepComposeDemos(t, cli, root)

	d := &composeDemo{t: t, cli: cli, root: root,
		project: fmt.Sprintf("%s%d-%s", composeProjectPrefix, time.Now().Unix(), dockertest.RunID)}
	d.network = d.project + "_default"
	d.client = d.project + "_client_1"
	// The sdctl image gets the project's name too, so the teardown removes it with the others.
	d.env = append(os.Environ(), "SDCTL_DEMO_PROJECT="+d.project, "COMPOSE_PROJECT_NAME="+d.project,
		"SDCTL_IMAGE="+d.project+"/sdctl:latest")
	t.Cleanup(d.teardown)

	d.script(t, "build")
	d.compose(t, "up", "-d", "--scale", "web=3")
	// Each step starts from where the one before left the project.
	_ = t.Run("1 three instances, each answering", d.registered) &&
		t.Run("2 a stopped container leaves", d.stopOne) &&
		t.Run("3 scaling back registers it again", d.scaleBack) &&
		t.Run("4 resolve answers while the Consul leader changes", d.leaderChange)
}

// composeDemo is one run of the demo project.
type composeDemo struct {
	t                              *testing.T
	cli                            *client.Client
	root, project, network, client string
	env                            []string
}

// run runs a command in the module root with the demo's environment and returns its stdout.
func (d *composeDemo) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = d.root
	cmd.Env = d.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func (d *composeDemo) must(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := d.run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *composeDemo) script(t *testing.T, mode string) {
	t.Helper()
	t.Logf("scripts/compose-demo.sh %s\n%s", mode, d.must(t, 10*time.Minute, "bash", filepath.Join("scripts", "compose-demo.sh"), mode))
}

func (d *composeDemo) compose(t *testing.T, args ...string) {
	t.Helper()
	d.must(t, 5*time.Minute, "docker-compose", append([]string{"-p", d.project, "-f", "deploy/compose/docker-compose.yml"}, args...)...)
}

// sdctl runs sdctl in the client container.
func (d *composeDemo) sdctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.run(ctx, "docker", append([]string{"exec", d.client, "/sdctl"}, args...)...)
	return strings.TrimSpace(strings.ReplaceAll(out, "\r", "")), err
}

// webContainers maps the running web containers' names to their IPs on the compose network.
func (d *composeDemo) webContainers(t *testing.T) map[string]string {
	t.Helper()
	list, err := d.cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+d.project), filters.Arg("label", "com.docker.compose.service=web"))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		if n := c.NetworkSettings.Networks[d.network]; n != nil {
			out[strings.TrimPrefix(c.Names[0], "/")] = n.IPAddress
		}
	}
	return out
}

// expected lists IP:3000 of every running web container, sorted.
func (d *composeDemo) expected(t *testing.T) []string {
	var want []string
	for _, ip := range d.webContainers(t) {
		want = append(want, ip+":3000")
	}
	slices.Sort(want)
	return want
}

// instances lists the healthy service-web instances as IP:PORT, sorted (none on an error).
func (d *composeDemo) instances() []string {
	out, err := d.sdctl("resolve", "service-web", "--all")
	if err != nil || out == "" {
		return nil
	}
	got := strings.Fields(out)
	slices.Sort(got)
	return got
}

// until polls cond until it holds or the deadline passes, and returns how long it took.
func (d *composeDemo) until(t *testing.T, deadline time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > deadline {
			t.Fatalf("%s: not within %s; last: %s", what, deadline, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *composeDemo) registered(t *testing.T) {
	// The client answers once Consul has elected a leader, and has the instances once the
	// watcher registered them and their HTTP checks passed.
	took := d.until(t, 3*time.Minute, "three healthy service-web instances", func() (bool, string) {
		out, err := d.sdctl("resolve", "service-web", "--wait", "5s", "--min", "3", "--all")
		return err == nil, fmt.Sprint(out, err)
	})
	t.Logf("three healthy instances %s after docker-compose up", took.Round(100*time.Millisecond))
	if got, want := d.instances(), d.expected(t); !slices.Equal(got, want) || len(got) != 3 {
		t.Fatalf("service-web instances %v, want the three web containers %v", got, want)
	}
	// Round-robin visits each instance; each answers with its own container's hostname and IP.
	byIP := map[string]string{}
	for name, ip := range d.webContainers(t) {
		byIP[ip] = name
	}
	answered := map[string]bool{}
	for range 3 {
		url, err := d.sdctl("resolve", "--strategy", "round-robin", "http://service-web/")
		if err != nil {
			t.Fatal(err)
		}
		ip, _, _ := strings.Cut(strings.TrimPrefix(url, "http://"), ":")
		owner := byIP[ip]
		if owner == "" {
			t.Fatalf("%s is no web container's address (%v)", url, byIP)
		}
		body, err := d.fetch(url, owner)
		if err != nil {
			t.Fatal(err)
		}
		insp, err := d.cli.ContainerInspect(context.Background(), owner)
		if err != nil {
			t.Fatal(err)
		}
		if want := "service-web " + insp.Config.Hostname + " " + ip; !strings.HasPrefix(body, want) {
			t.Errorf("%s answered %q, want %q (%s)", url, body, want, owner)
		}
		answered[owner] = true
	}
	if len(answered) != 3 {
		t.Errorf("round-robin reached %d different containers, want 3", len(answered))
	}
}

// fetch GETs url from the host: directly when the compose network is reachable, else through
// the port owner publishes (Docker Desktop).
func (d *composeDemo) fetch(url, owner string) (string, error) {
	body, err := httpGetBody(url)
	if err == nil {
		return body, nil
	}
	insp, ierr := d.cli.ContainerInspect(context.Background(), owner)
	if ierr != nil {
		return "", ierr
	}
	for _, b := range insp.NetworkSettings.Ports["3000/tcp"] {
		if b.HostIP == "0.0.0.0" || b.HostIP == "" {
			if body, perr := httpGetBody("http://127.0.0.1:" + b.HostPort + "/"); perr == nil {
				return body, nil
			}
		}
	}
	return "", fmt.Errorf("GET %s, directly and through the published port: %w", url, err)
}

func (d *composeDemo) stopOne(t *testing.T) {
	web := d.webContainers(t)
	names := slices.Sorted(maps.Keys(web))
	victim := names[0]
	before := d.instances()
	start := time.Now()
	if err := d.cli.ContainerStop(context.Background(), victim, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(slices.Clone(before), func(s string) bool { return s == web[victim]+":3000" })
	d.until(t, 30*time.Second, victim+"'s instance gone, the other two kept", func() (bool, string) {
		got := d.instances()
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	t.Logf("%s (%s) stopped: its instance left %s after docker stop", victim, web[victim], time.Since(start).Round(100*time.Millisecond))
}

func (d *composeDemo) scaleBack(t *testing.T) {
	start := time.Now()
	// --no-recreate: only start what is missing; the other containers stay as they are.
	d.compose(t, "up", "-d", "--no-recreate", "--scale", "web=3")
	d.until(t, time.Minute, "the three web containers registered", func() (bool, string) {
		got, want := d.instances(), d.expected(t)
		return len(want) == 3 && slices.Equal(got, want), fmt.Sprintf("%v, want %v", got, want)
	})
	t.Logf("three instances again %s after docker-compose up", time.Since(start).Round(100*time.Millisecond))
}

func (d *composeDemo) leaderChange(t *testing.T) {
	leader := func() string {
		out, _ := d.sdctl("cluster", "status", "--template", "{{.Leader}}")
		return out
	}
	old := leader()
	if old == "" {
		t.Fatal("the cluster has no leader before the test")
	}
	oldContainer := strings.TrimSpace(d.must(t, time.Minute, "docker-compose", "-p", d.project, "-f", "deploy/compose/docker-compose.yml", "ps", "-q", old))

	// One `sdctl resolve` (a new process, through the three server addresses) every 200 ms.
	type call struct {
		at  time.Time
		out string
		err error
	}
	var (
		mu    sync.Mutex
		calls []call
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			at := time.Now()
			out, err := d.sdctl("resolve", "service-web")
			mu.Lock()
			calls = append(calls, call{at, out, err})
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	d.until(t, 10*time.Second, "resolve answering before the stop", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) >= 5, strconv.Itoa(len(calls))
	})

	stopped := time.Now()
	if err := d.cli.ContainerStop(context.Background(), oldContainer, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	var elected string
	took := d.until(t, 2*time.Minute, "a new leader elected", func() (bool, string) {
		elected = leader()
		return elected != "" && elected != old, elected
	})
	// Keep resolving a few seconds past the election.
	d.until(t, time.Minute, "resolves after the election", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range calls {
			if c.at.After(stopped.Add(took)) {
				n++
			}
		}
		return n >= 10, strconv.Itoa(n)
	})
	close(stop)
	<-done

	answers := map[string]int{}
	var failed []string
	for _, c := range calls {
		if c.err != nil {
			failed = append(failed, fmt.Sprintf("%+.1fs: %v", c.at.Sub(stopped).Seconds(), c.err))
			continue
		}
		answers[c.out]++
	}
	t.Logf("leader %s stopped: %s elected %s later; %d resolves, answers %v", old, elected, took.Round(100*time.Millisecond), len(calls), answers)
	if len(failed) > 0 {
		t.Errorf("%d of %d resolves failed while %s was stopped and %s took over:\n%s", len(failed), len(calls), old, elected, strings.Join(failed, "\n"))
	}
}

// teardown removes the project and its images, and checks that nothing of it is left.
func (d *composeDemo) teardown() {
	t := d.t
	if t.Failed() {
		if out, err := d.run(context.Background(), "docker", "logs", d.project+"_watcher_1"); err == nil {
			t.Logf("watcher log:\n%s", out)
		}
	}
	d.script(t, "down")
	ctx := context.Background()
	var left []string
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+d.project))})
	for _, c := range cs {
		left = append(left, "container "+c.Names[0])
	}
	vs, verr := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+d.project))})
	for _, v := range vs.Volumes {
		left = append(left, "volume "+v.Name)
	}
	ns, nerr := d.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", d.network))})
	for _, n := range ns {
		if n.Name == d.network {
			left = append(left, "network "+n.Name)
		}
	}
	is, ierr := d.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", d.project+"/*"))})
	for _, i := range is {
		left = append(left, "image "+strings.Join(i.RepoTags, ","))
	}
	for _, err := range []error{err, verr, nerr, ierr} {
		if err != nil {
			t.Errorf("listing what the demo left: %v", err)
		}
	}
	if len(left) > 0 {
		t.Errorf("scripts/compose-demo.sh down left project %s behind: %v", d.project, left)
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
