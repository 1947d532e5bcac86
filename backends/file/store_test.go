package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/sdctl/sdctl/registry"
)

func readDoc(t *testing.T, path string) document {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := decode(data, decodeMode{})
	if err != nil {
		t.Fatalf("the registry file does not decode: %v", err)
	}
	return doc
}

func webInstance(id string, port int) registry.Instance {
	return registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: port}
}

func TestCorruptFileIsNeverOverwritten(t *testing.T) {
	sealed := encode(&document{Revision: 4, Instances: []record{
		{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 1},
		{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 2},
	}})
	for _, tc := range []struct {
		name, content, problem string
	}{
		{"Garbage", "\x00\x01 not json at all", "expected an object"},
		{"Empty", "", "the file is empty"},
		{"Blank", " \n\n", "the file is empty"},
		{"TruncatedJSON", string(sealed[:len(sealed)-30]), "the file ends inside a string"},
		{"BadInstance", strings.Replace(string(sealed), `"port":2`, `"port":0`, 1), `instance 2 (id "web-2"): port`},
		{"WrongFormat", strings.Replace(string(sealed), "registry/1", "registry/9", 1), "a newer sdctl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := openTemp(t)
			if err := os.WriteFile(b.Path(), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			check := func(op string, err error) {
				t.Helper()
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: got %v, want a *CorruptError", op, err)
				}
				if ce.Path != b.Path() || !strings.Contains(err.Error(), b.Path()) || !strings.Contains(ce.Problem, tc.problem) {
					t.Errorf("%s: error %q should name %s and say %q", op, err, b.Path(), tc.problem)
				}
				if errors.Is(err, registry.ErrInvalid) {
					t.Errorf("%s: a corrupt file reads as invalid input: %v", op, err)
				}
			}
			check("Register", b.Register(ctx, webInstance("web-3", 3)))
			check("Deregister", b.Deregister(ctx, "web-1"))
			check("Heartbeat", b.Heartbeat(ctx, "web-1"))
			_, err := b.Instances(ctx, registry.Query{Name: "web"})
			check("Instances", err)
			_, err = b.Services(ctx)
			check("Services", err)

			after, err := os.ReadFile(b.Path())
			if err != nil || string(after) != tc.content {
				t.Fatalf("the corrupt file changed (err %v)", err)
			}
			st, err := b.ClusterStatus(ctx)
			if err != nil {
				t.Fatalf("ClusterStatus: %v", err)
			}
			if m := st.Members[0]; m.Health != healthCorrupt || len(st.Notes) == 0 || !strings.Contains(strings.Join(st.Notes, "\n"), tc.problem) {
				t.Errorf("ClusterStatus = health %q notes %q, want corrupt with the problem", m.Health, st.Notes)
			}
		})
	}
}

// TestHandEditedInvalidInstanceFailsEveryRead checks that a bad hand edit in one service is
// reported when reading another: the sealed fast path must not hide it.
func TestHandEditedInvalidInstanceFailsEveryRead(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	for _, inst := range []registry.Instance{webInstance("web-1", 1), {ID: "api-1", Name: "api", Address: "10.0.0.9", Port: 9}} {
		if err := b.Register(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(b.Path())
	edited := strings.Replace(string(data), `"port":9`, `"port":99999`, 1)
	if err := os.WriteFile(b.Path(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := b.Instances(ctx, registry.Query{Name: "web"})
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Problem, `"api-1"`) || ce.Line != 6 {
		t.Fatalf("Instances(web) after breaking api-1 on line 6: %v", err)
	}
}

// TestConcurrentProcesses has 50 processes register at once; the lock must serialise their
// read-modify-write cycles so that none is lost.
func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 50 processes")
	}
	const writers = 50
	path := filepath.Join(t.TempDir(), "registry.json")
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		cmd := roleCommand(t, "writer", "WRITER_PATH="+path, "WRITER_COUNT=1", fmt.Sprintf("WRITER_PREFIX=w%02d", i))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %d: %v: %s", i, err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	doc := readDoc(t, path)
	if len(doc.Instances) != writers || doc.Revision != writers {
		t.Fatalf("after %d single writes: %d instances, revision %d", writers, len(doc.Instances), doc.Revision)
	}
	for i := range writers {
		if _, ok := doc.find(fmt.Sprintf("w%02d-0", i)); !ok {
			t.Errorf("writer %d's instance is missing", i)
		}
	}
}

// TestCrashSafety kills writers at random moments: every acknowledged registration must
// survive, and the file must always be a complete document.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes")
	}
	path := filepath.Join(t.TempDir(), "registry.json")
	acked := map[string]bool{}
	rounds := 12
	for round := range rounds {
		var cmds []*exec.Cmd
		var mu sync.Mutex
		var readers sync.WaitGroup
		// Each writer's first acknowledgement: the kill comes at a random moment after every
		// writer is writing, however long a loaded machine takes to start them.
		first := make(chan struct{}, 3)
		for w := range 3 {
			cmd := roleCommand(t, "writer", "WRITER_PATH="+path, "WRITER_COUNT=0", fmt.Sprintf("WRITER_PREFIX=r%02dw%d", round, w))
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			readers.Go(func() {
				r := bufio.NewReader(stdout)
				for n := 0; ; n++ {
					line, err := r.ReadString('\n')
					if err != nil {
						return // a line cut short by the kill was not acknowledged
					}
					mu.Lock()
					acked[strings.TrimSpace(line)] = true
					mu.Unlock()
					if n == 0 {
						first <- struct{}{}
					}
				}
			})
		}
		for range cmds {
			select {
			case <-first:
			case <-time.After(time.Minute):
				for _, cmd := range cmds {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
				t.Fatalf("round %d: a writer acknowledged nothing within a minute", round)
			}
		}
		time.Sleep(time.Duration(30+rand.IntN(120)) * time.Millisecond)
		for _, cmd := range cmds {
			_ = cmd.Process.Kill() // SIGKILL
		}
		readers.Wait()
		for _, cmd := range cmds {
			_ = cmd.Wait()
		}

		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && len(acked) == 0 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		p := parser{s: string(data)}
		if _, sealed, err := p.sealed(data, decodeMode{}); !sealed || err != nil {
			t.Fatalf("round %d: the file is not a complete document written by sdctl (err %v)", round, err)
		}
		doc := readDoc(t, path)
		for id := range acked {
			if _, ok := doc.find(id); !ok {
				t.Fatalf("round %d: acknowledged instance %s is missing", round, id)
			}
		}
	}
	if len(acked) < rounds {
		t.Errorf("only %d registrations acknowledged in %d rounds; the test proves little", len(acked), rounds)
	}
	t.Logf("%d acknowledged registrations survived %d rounds of SIGKILL", len(acked), rounds)

	// Writers killed between creating and renaming a temporary file leave it behind; the next
	// write clears them.
	b, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(t.Context(), webInstance("web-after", 1)); err != nil {
		t.Fatal(err)
	}
	if temps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPrefix("registry.json")+"*")); len(temps) > 0 {
		t.Errorf("temporary files left after a write: %q", temps)
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	b := openTemp(t)
	if err := b.Register(t.Context(), webInstance("web-1", 1)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(b.Path())
	holder := flock.New(b.Path() + ".lock")
	if err := holder.Lock(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Register(ctx, webInstance("web-2", 2))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "another sdctl process") {
		t.Errorf("Register while another process holds the lock: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Register waited %v past its deadline", time.Since(start))
	}
	_ = holder.Unlock()
	if after, _ := os.ReadFile(b.Path()); !bytes.Equal(before, after) {
		t.Error("a write that gave up on the lock changed the file")
	}
	// The abandoned waiter must let go of the lock once it gets it.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if err := b.Register(ctx2, webInstance("web-3", 3)); err != nil {
		t.Fatalf("Register after the lock was released: %v", err)
	}
}
