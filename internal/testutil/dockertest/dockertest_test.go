package dockertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/testutil/dockertest"
	"github.com/sdctl/sdctl/registry/registrytest"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

type info struct {
	Name      string   `json:"name"`
	Hostname  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
}

// httpClient talks to containers directly, never through a proxy of the environment.
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

// get fetches url, retrying while the container starts, and returns the body.
func get(t *testing.T, url string, accept string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := httpClient.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return string(body)
			}
			err = fmt.Errorf("%s %s %v", resp.Status, body, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := httpClient.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func TestWebImagePublishedPort(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	start := time.Now()
	img := dockertest.WebImage(t, cli)
	t.Logf("WebImage: %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(img, dockertest.WebRepository+":") {
		t.Errorf("WebImage = %q", img)
	}
	if again := dockertest.WebImage(t, cli); again != img {
		t.Errorf("second WebImage = %q, want %q", again, img)
	}

	c := dockertest.Run(t, cli, dockertest.Spec{
		Image:   img,
		Publish: []string{"127.0.0.1::3000"},
		Labels:  map[string]string{"SERVICE_NAME": "web"},
	})
	if !strings.HasPrefix(c.Name, "sdctl-test-"+dockertest.RunID+"-") {
		t.Errorf("container name %q", c.Name)
	}
	in := c.Inspect(t)
	for k, v := range map[string]string{dockertest.LabelTest: "1", dockertest.LabelRun: dockertest.RunID, "SERVICE_NAME": "web"} {
		if in.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, in.Config.Labels[k], v)
		}
	}
	ip := in.NetworkSettings.Networks["bridge"].IPAddress
	if ip == "" {
		t.Fatalf("container has no address on the bridge: %+v", in.NetworkSettings.Networks)
	}

	addr := c.HostPort(t, "3000")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("HostPort = %q", addr)
	}
	body := get(t, "http://"+addr+"/", "")
	if want := "service-web " + in.Config.Hostname + " " + ip + "\n"; body != want {
		t.Errorf("GET / = %q, want %q", body, want)
	}
	var got info
	if err := json.Unmarshal([]byte(get(t, "http://"+addr+"/", "application/json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Hostname != in.Config.Hostname || !slices.Contains(got.Addresses, ip) {
		t.Errorf("GET / as JSON = %+v, want hostname %s and address %s", got, in.Config.Hostname, ip)
	}

	// The container's IP is reachable from here too, on the exposed port.
	if body := get(t, "http://"+net.JoinHostPort(ip, "3000")+"/", ""); !strings.Contains(body, ip) {
		t.Errorf("GET / on %s = %q", ip, body)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	c := dockertest.Run(t, cli, dockertest.Spec{
		Image:       dockertest.WebImage(t, cli),
		Publish:     []string{"127.0.0.1::3000/tcp"},
		Healthcheck: dockertest.WebHealthcheck(300 * time.Millisecond),
	})
	waitHealth(t, c, "healthy")
	url := "http://" + c.HostPort(t, "3000/tcp") + "/healthz"
	post(t, url+"?state=fail")
	waitHealth(t, c, "unhealthy")
	post(t, url+"?state=ok")
	waitHealth(t, c, "healthy")
}

func waitHealth(t *testing.T, c dockertest.Container, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		in := c.Inspect(t)
		if in.State.Health != nil && in.State.Health.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container health %+v, want %s", in.State.Health, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUDPAndExpose(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	c := dockertest.Run(t, cli, dockertest.Spec{
		Image:   dockertest.WebImage(t, cli),
		Cmd:     []string{"-udp", "5353", "-name", "udp-web"},
		Expose:  []string{"7000-7001/tcp"},
		Publish: []string{"127.0.0.1::5353/udp"},
	})
	in := c.Inspect(t)
	var exposed []string
	for p := range in.Config.ExposedPorts {
		exposed = append(exposed, string(p))
	}
	slices.Sort(exposed)
	if want := []string{"3000/tcp", "5353/udp", "7000/tcp", "7001/tcp"}; !slices.Equal(exposed, want) {
		t.Errorf("exposed ports %v, want %v", exposed, want)
	}

	addr := c.HostPort(t, "5353/udp")
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 512)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn.Write([]byte("?"))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			if !strings.HasPrefix(string(buf[:n]), "udp-web "+in.Config.Hostname+" ") {
				t.Errorf("UDP answer %q", buf[:n])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no UDP answer from %s: %v", addr, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	c := dockertest.Run(t, cli, dockertest.Spec{Image: dockertest.WebImage(t, cli)})
	url := "http://" + net.JoinHostPort(c.Inspect(t).NetworkSettings.Networks["bridge"].IPAddress, "3000") + "/"
	get(t, url, "")

	// service-web stops gracefully on SIGTERM, as PID 1 of the container.
	c.Stop(t, 10*time.Second)
	if st := c.Inspect(t).State; st.Running || st.ExitCode != 0 {
		t.Errorf("after Stop: running %v, exit code %d, want a stopped container that exited 0", st.Running, st.ExitCode)
	}
	c.Start(t)
	if st := c.Inspect(t).State; !st.Running {
		t.Errorf("after Start: %+v", st)
	}
	url = "http://" + net.JoinHostPort(c.Inspect(t).NetworkSettings.Networks["bridge"].IPAddress, "3000") + "/"
	get(t, url, "")
	c.Kill(t, "SIGKILL")
	waitStopped(t, c, 137)
	c.Remove(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.ContainerInspect(ctx, c.ID); err == nil {
		t.Error("container still there after Remove")
	}
	c.Remove(t) // a removed container is fine
}

func waitStopped(t *testing.T, c dockertest.Container, code int) {
	t.Helper()
	var st *container.State
	registrytest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if st = c.Inspect(t).State; st.Running {
			return errors.New("container still running")
		}
		return nil
	})
	if st.ExitCode != code {
		t.Errorf("exit code %d, want %d", st.ExitCode, code)
	}
}

func TestAutoRemove(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	c := dockertest.Run(t, cli, dockertest.Spec{Image: dockertest.WebImage(t, cli), AutoRemove: true})
	c.Stop(t, 10*time.Second)
	registrytest.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.ContainerInspect(ctx, c.ID); err == nil {
			return errors.New("auto-remove container still there")
		}
		return nil
	})
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	img := dockertest.WebImage(t, cli)
	for _, ipv6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", ipv6), func(t *testing.T) {
			t.Parallel()
			name := dockertest.Network(t, cli, dockertest.NetworkOptions{IPv6: ipv6})
			if !strings.HasPrefix(name, "sdctl-test-net-"+dockertest.RunID+"-") {
				t.Errorf("network name %q", name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Labels[dockertest.LabelRun] != dockertest.RunID || n.EnableIPv6 != ipv6 {
				t.Errorf("network labels %v, IPv6 %v", n.Labels, n.EnableIPv6)
			}

			c := dockertest.Run(t, cli, dockertest.Spec{Image: img, Network: name})
			ep := c.Inspect(t).NetworkSettings.Networks[name]
			if ep == nil || ep.IPAddress == "" {
				t.Fatalf("container endpoint on %s: %+v", name, ep)
			}
			want := []string{ep.IPAddress}
			if ipv6 {
				a, err := netip.ParseAddr(ep.GlobalIPv6Address)
				if err != nil || !netip.MustParsePrefix("fd00:5d::/32").Contains(a) {
					t.Fatalf("container IPv6 address %q, want one in fd00:5d::/32", ep.GlobalIPv6Address)
				}
				want = append(want, ep.GlobalIPv6Address)
			}
			var got info
			for _, ip := range want { // reachable from here on each address
				url := "http://" + net.JoinHostPort(ip, "3000") + "/"
				if err := json.Unmarshal([]byte(get(t, url, "application/json")), &got); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Addresses, want) {
					t.Errorf("GET %s: addresses %v, want %v", url, got.Addresses, want)
				}
			}
		})
	}
}

func TestHostNetwork(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dockertest.Run(t, cli, dockertest.Spec{
		Image:   dockertest.WebImage(t, cli),
		Network: "host",
		Cmd:     []string{"-listen", "127.0.0.1:0"},
		Env:     []string{"PORT=" + strconv.Itoa(port)},
	})
	host, _ := os.Hostname()
	body := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/", "")
	if !strings.HasPrefix(body, "service-web "+host+" ") {
		t.Errorf("GET / on the host network = %q, want the host's name %s", body, host)
	}
}

// TestSocketProxy follows the engine's events through the proxy, cuts it and sees the stream
// fail, then restores it and sees a new stream work.
func TestSocketProxy(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	p := dockertest.SocketProxy(t, "")
	if !strings.HasPrefix(p.Host(), "unix://") {
		t.Errorf("Host = %q", p.Host())
	}
	pcli := p.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pcli.Ping(ctx); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}

	msgs, errs := follow(ctx, pcli)
	waitNetworkEvent(t, cli, msgs, errs)

	p.Cut()
	select {
	case err := <-errs:
		t.Logf("event stream after Cut: %v", err)
		if err == nil {
			t.Error("event stream ended without an error")
		}
	case m := <-msgs:
		t.Fatalf("event after Cut: %+v", m)
	case <-time.After(10 * time.Second):
		t.Fatal("event stream still open 10s after Cut")
	}
	if _, err := pcli.Ping(ctx); err == nil {
		t.Error("ping through a cut proxy succeeded")
	}

	p.Restore()
	p.Restore() // restoring twice is harmless
	msgs, errs = follow(ctx, pcli)
	waitNetworkEvent(t, cli, msgs, errs)
}

func follow(ctx context.Context, cli *client.Client) (<-chan events.Message, <-chan error) {
	return cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.NetworkEventType)),
		filters.Arg("event", string(events.ActionCreate)),
	)})
}

// waitNetworkEvent creates networks until the stream reports one; the first may be created
// before the engine has subscribed the stream.
func waitNetworkEvent(t *testing.T, cli *client.Client, msgs <-chan events.Message, errs <-chan error) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	names := map[string]bool{}
	for {
		names[dockertest.Network(t, cli, dockertest.NetworkOptions{})] = true
		tick := time.After(time.Second)
		for waiting := true; waiting; {
			select {
			case m := <-msgs:
				if names[m.Actor.Attributes["name"]] {
					return
				}
			case err := <-errs:
				t.Fatalf("event stream: %v", err)
			case <-tick:
				waiting = false
			case <-deadline:
				t.Fatal("no network event through the proxy")
			}
		}
	}
}
