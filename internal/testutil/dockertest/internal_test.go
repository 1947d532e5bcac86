package dockertest

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

func TestPortConfig(t *testing.T) {
	exposed, bindings, err := portConfig(
		[]string{"7000-7001", "53/udp"},
		[]string{"3000/tcp", "127.0.0.1::3001", "8080:3002", "127.0.0.1:5353:53/udp"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for p := range exposed {
		ports = append(ports, string(p))
	}
	slices.Sort(ports)
	if want := []string{"3000/tcp", "3001/tcp", "3002/tcp", "53/udp", "7000/tcp", "7001/tcp"}; !slices.Equal(ports, want) {
		t.Errorf("exposed %v, want %v", ports, want)
	}
	want := nat.PortMap{
		"3000/tcp": {{}},
		"3001/tcp": {{HostIP: "127.0.0.1"}},
		"3002/tcp": {{HostPort: "8080"}},
		"53/udp":   {{HostIP: "127.0.0.1", HostPort: "5353"}},
	}
	if len(bindings) != len(want) {
		t.Errorf("bindings %v, want %v", bindings, want)
	}
	for p, b := range want {
		if !slices.Equal(bindings[p], b) {
			t.Errorf("bindings[%s] = %v, want %v", p, bindings[p], b)
		}
	}

	if e, b, err := portConfig(nil, nil); e != nil || b != nil || err != nil {
		t.Errorf("portConfig(nil, nil) = %v, %v, %v", e, b, err)
	}
	for _, bad := range [][2][]string{{{"x"}, nil}, {nil, {"1:2:3:4"}}, {{"53/sctp2"}, nil}} {
		if _, _, err := portConfig(bad[0], bad[1]); err == nil {
			t.Errorf("portConfig(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestStale(t *testing.T) {
	now := time.Now()
	old := now.Add(-SweepAge - time.Minute)
	for _, c := range []struct {
		labels  map[string]string
		created time.Time
		want    bool
	}{
		{map[string]string{LabelTest: "1", LabelRun: "other"}, old, true},
		{map[string]string{LabelTest: "1"}, old, true},
		{map[string]string{LabelTest: "1", LabelRun: "other"}, now.Add(-time.Minute), false},
		{map[string]string{LabelTest: "1", LabelRun: RunID}, old, false},
		{map[string]string{LabelRun: "other"}, old, false},
	} {
		if got := stale(c.labels, c.created, now); got != c.want {
			t.Errorf("stale(%v, %s ago) = %v", c.labels, now.Sub(c.created).Round(time.Minute), got)
		}
	}
}

func TestRandomULA(t *testing.T) {
	for range 100 {
		p, err := netip.ParsePrefix(randomULA())
		if err != nil || p.Bits() != 64 || !netip.MustParsePrefix("fd00:5d::/32").Contains(p.Addr()) {
			t.Fatalf("randomULA() = %v, %v", p, err)
		}
	}
}

// TestRemove checks the removal Main and Sweep share, on objects of a made-up run.
func TestRemove(t *testing.T) {
	t.Parallel()
	cli := Client(t)
	// Objects of this run (so that an interrupted Main removes them too) with a label of their own.
	const key = "io.sdctl.test.removetest"
	mark := newRunID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	labels := Labels(map[string]string{key: mark})
	n, err := cli.NetworkCreate(ctx, uniqueName("net"), network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), n.ID) })
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: WebImage(t, cli), Labels: labels}, nil, nil, nil, uniqueName(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	f := filters.NewArgs(filters.Arg("label", key+"="+mark))

	// Sweep leaves the objects of this run alone.
	if err := Sweep(ctx, cli); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{}); err != nil {
		t.Fatalf("Sweep removed a network of this run: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, c.ID); err != nil {
		t.Fatalf("Sweep removed a container of this run: %v", err)
	}
	if err := remove(ctx, cli, f, func(map[string]string, time.Time) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{}); !gone(err) {
		t.Errorf("network still there after remove: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, c.ID); !gone(err) {
		t.Errorf("container still there after remove: %v", err)
	}
}
