// Package dockerimage connects to the Docker engine and builds the small images this
// repository's tests and benchmarks run, FROM scratch, through the engine API, from files held
// in memory: nothing is pulled and no docker CLI is needed.
package dockerimage

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

// Connect connects to the engine the environment names (DOCKER_HOST and friends, else the
// local socket), as sdctl watch does, checks within 10s that it answers, and settles the API
// version before any concurrent use: the client negotiates lazily and unsynchronised, which
// races when its first calls are concurrent.
func Connect(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("no Docker engine at %s: %w", cli.DaemonHost(), err)
	}
	cli.NegotiateAPIVersion(ctx)
	return cli, nil
}

// File is one file of a build context.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// ServiceWeb builds examples/service-web (below the module root) as a static binary for the
// engine's platform and returns it with its Dockerfile, ready for Build.
func ServiceWeb(ctx context.Context, root, goos, goarch string) ([]File, error) {
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
	return []File{{"Dockerfile", 0o644, dockerfile}, {"service-web", 0o755, binary}}, nil
}

// Build builds files (a Dockerfile among them) into an image tagged tag and labelled labels,
// without the build cache, so that no layer is shared with another run that may remove it.
// When the build fails, the images its finished steps left are removed.
func Build(ctx context.Context, cli *client.Client, files []File, tag string, labels map[string]string) error {
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
	if steps, err := readOutput(resp.Body); err != nil {
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

// readOutput reads the JSON stream of a build to its end. It returns the images that the
// build's steps made, and the error the stream reports, with the build's output.
func readOutput(r io.Reader) (steps []string, err error) {
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
