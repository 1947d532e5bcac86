package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

// roleEnv makes the test binary act as a separate sdctl process instead of running tests:
// "writer" registers instances and prints each ID once its write is acknowledged, "probe"
// reports what it can do with a registry (run as another user by the permission tests).
const roleEnv = "SDCTL_FILE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(runWriter())
	case "probe":
		os.Exit(runProbe())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", roleEnv, os.Getenv(roleEnv))
		os.Exit(2)
	}
}

// roleCommand re-executes the test binary in the given role; -test.run=^$ keeps it from
// running tests should the environment variable get lost.
func roleCommand(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=" + mode}, env...)...)
	return cmd
}

// runWriter registers WRITER_COUNT instances (forever when 0) named WRITER_PREFIX-<n> in the
// registry at WRITER_PATH, printing each ID after Register returns. WRITER_UMASK (octal) sets
// its umask first.
func runWriter() int {
	applyTestUmask()
	b, err := Open(Options{Path: os.Getenv("WRITER_PATH")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	count, _ := strconv.Atoi(os.Getenv("WRITER_COUNT"))
	prefix := os.Getenv("WRITER_PREFIX")
	for i := 0; count == 0 || i < count; i++ {
		inst := registry.Instance{
			ID: fmt.Sprintf("%s-%d", prefix, i), Name: "writer", Address: "10.1.2.3", Port: 1 + i%65535,
			Tags: []string{prefix}, Meta: map[string]string{"writer": prefix},
		}
		if err := b.Register(context.Background(), inst); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(inst.ID)
	}
	return 0
}

// probeResult is what runProbe reports as JSON on stdout.
type probeResult struct {
	ReadErr, WriteErr       string
	ReadDenied, WriteDenied bool
	StatusHealth, Writable  string
	FileUnchanged           bool
	UID                     int
}

func runProbe() int {
	path := os.Getenv("PROBE_PATH")
	before, _ := os.ReadFile(path)
	b, err := Open(Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	res := probeResult{UID: os.Geteuid()}
	if _, err := b.Instances(ctx, registry.Query{Name: "web"}); err != nil {
		res.ReadErr, res.ReadDenied = err.Error(), errors.Is(err, registry.ErrPermissionDenied)
	}
	if err := b.Register(ctx, registry.Instance{ID: "probe-1", Name: "probe", Address: "10.0.0.1", Port: 1}); err != nil {
		res.WriteErr, res.WriteDenied = err.Error(), errors.Is(err, registry.ErrPermissionDenied)
	}
	if st, err := b.ClusterStatus(ctx); err == nil {
		res.StatusHealth, res.Writable = st.Members[0].Health, st.Members[0].Details["writable"]
	}
	after, _ := os.ReadFile(path)
	res.FileUnchanged = string(before) == string(after)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}
