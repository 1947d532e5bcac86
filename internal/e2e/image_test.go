package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
	cmd.Env = append(os.Environ(), "IMAGE_CONTEXT="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/image-test.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/image-test.sh: %v", err)
	}
}
