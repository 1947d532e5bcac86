package dockertest

import (
	"testing"

	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/harness"
)

// NetworkOptions configures Network (see harness.NetworkOptions): the zero value makes an
// IPv4-only bridge on a subnet the engine picks. Network adds the dockertest labels to Labels.
type NetworkOptions = harness.NetworkOptions

// Network creates a bridge network with a unique name (sdctl-test-net-<RunID>-<n>) and returns
// that name, for Spec.Network. t.Cleanup removes it; remove its containers first (containers
// made by Run in the same test are, as cleanups run last-in first-out).
func Network(t testing.TB, cli *client.Client, opts NetworkOptions) string {
	t.Helper()
	requireMain(t)
	name := uniqueName("net")
	opts.Labels = Labels(opts.Labels)
	ctx, done := startCreating(apiTimeout)
	err := harness.CreateNetwork(ctx, cli, name, opts)
	done()
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := apiContext()
		defer cancel()
		if err := harness.RemoveNetwork(ctx, cli, name); err != nil {
			t.Errorf("dockertest: %v", err)
		}
	})
	return name
}
