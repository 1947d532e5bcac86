package dockertest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

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
	dir, err := os.MkdirTemp("", "sdctl-dockertest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "service-web")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", bin, "./examples/service-web")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+ver.Os, "GOARCH="+ver.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/service-web: %v\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "examples", "service-web", "Dockerfile"))
	if err != nil {
		return "", err
	}

	h := sha256.New()
	h.Write(dockerfile)
	h.Write(binary)
	ref := fmt.Sprintf("%s:%s-%s", WebRepository, hex.EncodeToString(h.Sum(nil))[:12], RunID)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"service-web", 0o755, binary}} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}

	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{ref},
		Labels:      Labels(nil),
		Remove:      true,
		ForceRemove: true,
		NoCache:     true, // an image shared with another run could be removed under us
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("building %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if steps, err := readBuildOutput(resp.Body); err != nil {
		// The steps that were done left untagged, unlabelled images: remove them.
		for _, id := range slices.Backward(steps) {
			_, _ = cli.ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true}) // best effort
		}
		return "", fmt.Errorf("building %s: %w", ref, err)
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("building %s: %w", ref, err)
	}
	return ref, nil
}

// readBuildOutput reads the JSON stream of a build to its end. It returns the images that the
// build's steps made, and the error the stream reports, with the build's output.
func readBuildOutput(r io.Reader) (steps []string, err error) {
	var out strings.Builder
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return steps, nil
			}
			return steps, fmt.Errorf("%w\n%s", err, out.String())
		}
		out.WriteString(msg.Stream)
		// A step ends with " ---> <image id>"; it starts with " ---> Running in <container>".
		if id, ok := strings.CutPrefix(strings.TrimSpace(msg.Stream), "---> "); ok && !strings.Contains(id, " ") {
			steps = append(steps, id)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			msg.Error = msg.ErrorDetail.Message
		}
		if msg.Error != "" {
			return steps, fmt.Errorf("%s\n%s", msg.Error, out.String())
		}
	}
}
