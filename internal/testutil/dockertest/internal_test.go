package dockertest

import (
	"context"
	"slices"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/sdctl/sdctl/internal/harness"
)

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

// TestRemove checks harness.RemoveLabelled, which Main and Sweep share, on objects of a
// made-up run.
func TestRemove(t *testing.T) {
	t.Parallel()
	cli := Client(t)
	// Objects of this run (so that an interrupted Main removes them too) with a label of their own.
	const key = "io.sdctl.test.removetest"
	mark := harness.NewRunID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	labels := Labels(map[string]string{key: mark})
	netName, cName := uniqueName("net"), uniqueName("")
	n, err := cli.NetworkCreate(ctx, netName, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), n.ID) })
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: WebImage(t, cli), Labels: labels}, nil, nil, nil, cName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
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
	r, err := harness.RemoveLabelled(ctx, cli, key+"="+mark, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Containers, []string{cName}) || !slices.Equal(r.Networks, []string{netName}) || len(r.Images) != 0 {
		t.Errorf("RemoveLabelled removed %+v, want container %s and network %s", r, cName, netName)
	}
	if _, err := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network still there after RemoveLabelled: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, c.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after RemoveLabelled: %v", err)
	}
}
