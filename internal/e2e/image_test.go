package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil"
)

// TestImage builds the container image as `make image` does and checks it as a user runs it
// (scripts/image-test.sh): version and help, the non-root user, register in one container and
// resolve in another through a volume, nothing pulled, everything removed.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image")
	}
	for _, tool := range []string{"docker", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, "the image test needs "+tool+": "+err.Error())
		}
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		testutil.SkipUnlessRequired(t, "the image test needs a Docker engine: "+err.Error())
	}
	root := testutil.ModuleRoot(t)
	cmd := exec.Command(filepath.Join(root, "scripts", "image-test.sh"))
	cmd.Dir = root
	// A private build context: other tests build images from this tree at the same time.
	// Its own image name, removed afterwards: each run builds a new image.
	name := fmt.Sprintf("sdctl-image-test-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", name).Output()
		for _, ref := range strings.Fields(string(out)) {
			_ = exec.Command("docker", "image", "rm", ref).Run()
		}
	})
	cmd.Env = append(os.Environ(), "IMAGE_CONTEXT="+t.TempDir(), "IMAGE="+name)
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/image-test.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/image-test.sh: %v", err)
	}
}
