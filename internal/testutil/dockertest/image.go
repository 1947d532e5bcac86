package dockertest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/sdctl/sdctl/internal/harness"
	"github.com/sdctl/sdctl/internal/testutil"
)

// WebRepository is the repository of the image WebImage builds.
const WebRepository = "sdctl-test/service-web"

const buildTimeout = 5 * time.Minute

var webImage struct {
	sync.Mutex
	done bool
	ref  string
	err  error
}

// WebImage builds examples/service-web into an image FROM scratch (a static binary, built
// with CGO_ENABLED=0 -trimpath for the engine's platform, and that folder's Dockerfile), once
// per test process, and returns its reference:
//
//	sdctl-test/service-web:<content hash>-<RunID>
//
// The run in the tag keeps test processes that run at the same time from moving each other's
// tags. The image listens on port 3000 (EXPOSE 3000), has no HEALTHCHECK (see WebHealthcheck)
// and carries the dockertest labels, which its containers inherit. Main removes it. A failed
// build fails every caller.
func WebImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	requireMain(t)
	webImage.Lock()
	defer webImage.Unlock()
	if !webImage.done {
		start := time.Now()
		webImage.ref, webImage.err = buildWebImage(testutil.ModuleRoot(t), cli)
		webImage.done = true
		if webImage.err == nil {
			t.Logf("dockertest: built %s in %s", webImage.ref, time.Since(start).Round(time.Millisecond))
		}
	}
	if webImage.err != nil {
		t.Fatalf("dockertest: %v", webImage.err)
	}
	return webImage.ref
}

func buildWebImage(root string, cli *client.Client) (string, error) {
	ctx, done := startCreating(buildTimeout)
	defer done()
	ver, err := cli.ServerVersion(ctx)
	if err != nil {
		return "", err
	}
	files, err := harness.ServiceWebFiles(ctx, root, ver.Os, ver.Arch)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		h.Write(f.Data)
	}
	ref := fmt.Sprintf("%s:%s-%s", WebRepository, hex.EncodeToString(h.Sum(nil))[:12], RunID)
	if err := harness.BuildImage(ctx, cli, files, ref, Labels(nil)); err != nil {
		return "", err
	}
	return ref, nil
}
