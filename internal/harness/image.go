package harness

// The images the tests and the benchmark run are built FROM scratch, through the engine API,
// from files held in memory: nothing is pulled and no docker CLI is needed.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// ImageFile is one file of a build context.
type ImageFile struct {
	Name string
	Mode int64
	Data []byte
}

// ServiceWebFiles builds examples/service-web (below the module root) as a static binary for
// the engine's platform and returns it with its Dockerfile, ready for BuildImage.
func ServiceWebFiles(ctx context.Context, root, goos, goarch string) ([]ImageFile, error) {
	dir, err := os.MkdirTemp("", "sdctl-service-web-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "service-web")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", bin, "./examples/service-web")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./examples/service-web: %w\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "examples", "service-web", "Dockerfile"))
	if err != nil {
		return nil, err
	}
	return []ImageFile{{"Dockerfile", 0o644, dockerfile}, {"service-web", 0o755, binary}}, nil
}

// BuildImage builds files (a Dockerfile among them) into an image tagged tag and labelled
// labels, without the build cache, so that no layer is shared with another run that may remove
// it. When the build fails, the images its finished steps left are removed.
func BuildImage(ctx context.Context, cli *client.Client, files []ImageFile, tag string, labels map[string]string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		NoCache:     true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("building %s: %w", tag, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if steps, err := readBuildOutput(resp.Body); err != nil {
		for _, id := range slices.Backward(steps) {
			_, _ = cli.ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true}) // best effort
		}
		return fmt.Errorf("building %s: %w", tag, err)
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("building %s: %w", tag, err)
	}
	return nil
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

// WebHealthcheck checks a container of the service-web image through "/service-web check" on
// http://127.0.0.1:3000/healthz every interval; one failure makes it unhealthy. Flip it with
// POST /healthz?state=fail (or ok).
func WebHealthcheck(interval time.Duration) *Healthcheck {
	return &Healthcheck{
		Test:     []string{"CMD", "/service-web", "check", "-timeout", "2s", "http://127.0.0.1:3000/healthz"},
		Interval: interval,
		Timeout:  5 * time.Second,
		Retries:  1,
	}
}
