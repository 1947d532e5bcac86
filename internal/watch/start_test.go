package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sdctl/sdctl/internal/hostaddr"
	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/watch/clock"
)

func TestAdvertiseAddress(t *testing.T) {
	for host, want := range map[string]string{
		"tcp://10.0.0.7:2376":         "10.0.0.7",
		"https://[fd00::7]:2376":      "fd00::7",
		"tcp://127.0.0.1:2375":        hostaddr.Outbound(), // a local engine: this machine's address
		"unix:///var/run/docker.sock": hostaddr.Outbound(),
	} {
		if got := AdvertiseAddress(host); got != want {
			t.Errorf("AdvertiseAddress(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestPermissionDenied(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("dial: %w", fs.ErrPermission): true,
		errors.New("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock"): true,
		errors.New("Cannot connect to the Docker daemon at unix:///nope.sock. Is the docker daemon running?"):              false,
	} {
		if got := permissionDenied(err); got != want {
			t.Errorf("permissionDenied(%q) = %v, want %v", err, got, want)
		}
	}
}

// A context that ends while the engine is being asked ends the wait at once, which is not an
// error: no pause is set and nothing is logged. (TestWaitForNodeAsksEveryTwoSeconds ends one
// during the pause.)
func TestWaitForNodeStopsWithItsContext(t *testing.T) {
	docker, err := NewDocker("unix://" + filepath.Join(t.TempDir(), "no-engine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clk := clock.NewFake(time.Now())
	logs := &testutil.SyncBuffer{}
	node, err := waitForNode(ctx, clk, docker, time.Second, hclog.New(&hclog.LoggerOptions{Output: logs}))
	if node != "" || err != nil {
		t.Errorf("waitForNode = %q, %v; want \"\", nil", node, err)
	}
	if n := clk.Waiters(); n != 0 || logs.String() != "" {
		t.Errorf("%d timers set, logged %q; want none", n, logs.String())
	}
}
