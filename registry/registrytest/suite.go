package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// Options describes what the backend under test supports.
type Options struct {
	// Name labels a top-level subtest holding the suite ("file", "plugin/file"); empty runs the
	// subtests directly under the caller's test.
	Name string
	// Checks means the backend runs http and tcp checks. Without it, Register with a check must
	// fail with ErrUnsupported.
	Checks bool
	// TTL means the backend honours Instance.TTL and Heartbeat. Without it, Register with a TTL
	// must fail with ErrUnsupported.
	TTL bool
	// ExpiryDeletes means an instance whose TTL runs out is removed (an etcd lease) instead of
	// being listed as critical; the suite then expects it gone and Heartbeat to fail with
	// ErrNotFound.
	ExpiryDeletes bool
	// Watch means the backend implements Watch. Without it, Watch must fail with ErrUnsupported.
	Watch bool
	// MinTTL is the shortest TTL the backend accepts; 1s when zero. The TTL tests last a few
	// multiples of it.
	MinTTL time.Duration
	// Timeout bounds every wait for something asynchronous (a watch event, the detection of an
	// expired TTL after MinTTL); 5s when zero.
	Timeout time.Duration
	// HealthLag is how much longer than Timeout reads may lag a change of health that the
	// registry makes itself: a TTL running out, a heartbeat renewing an expired one. Consul's
	// agent changes the check's status on time and normally tells the catalog at once, but a
	// busy agent can miss that update until its next full sync (anti-entropy, every one to two
	// minutes on a small cluster). Zero where reads see the change directly.
	HealthLag time.Duration
}

func (o Options) withDefaults() Options {
	if o.MinTTL <= 0 {
		o.MinTTL = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return o
}

// Run runs the conformance suite. open must return a new, empty registry each time it is called
// (the suite calls it once per subtest, sometimes from parallel subtests) and should close it
// with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) registry.Registry, opts Options) {
	t.Helper()
	s := &suite{open: open, opts: opts.withDefaults()}
	if opts.Name == "" {
		s.run(t)
		return
	}
	t.Run(opts.Name, s.run)
}

type suite struct {
	open func(t *testing.T) registry.Registry
	opts Options
}

func (s *suite) run(t *testing.T) {
	t.Run("Register", s.testRegister)
	t.Run("Deregister", s.testDeregister)
	t.Run("Heartbeat", s.testHeartbeat)
	t.Run("Instances", s.testInstances)
	t.Run("Services", s.testServices)
	t.Run("DeclaredHealth", s.testDeclaredHealth)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("ClusterStatus", s.testClusterStatus)
	t.Run("Info", s.testInfo)
	t.Run("TTL", s.testTTL)
	t.Run("Watch", s.testWatch)
}

// ctx bounds one subtest's calls so a hung backend fails the test instead of the whole run.
func (s *suite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.opts.Timeout+s.opts.HealthLag+4*s.opts.MinTTL+10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// instance builds a valid instance; n varies the address and port.
func instance(name, id string, n int) registry.Instance {
	return registry.Instance{
		ID:      id,
		Name:    name,
		Address: fmt.Sprintf("10.0.%d.%d", n/250, n%250+1),
		Port:    3000 + n,
	}
}

func register(ctx context.Context, t *testing.T, r registry.Registry, insts ...registry.Instance) {
	t.Helper()
	for _, inst := range insts {
		if err := r.Register(ctx, inst); err != nil {
			t.Fatalf("Register(%s): %v", inst.ID, err)
		}
	}
}

func instances(ctx context.Context, t *testing.T, r registry.Registry, q registry.Query) []registry.Instance {
	t.Helper()
	got, err := r.Instances(ctx, q)
	if err != nil {
		t.Fatalf("Instances(%+v): %v", q, err)
	}
	return got
}

func ids(insts []registry.Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.ID
	}
	return out
}

// checkIDs fails unless got holds exactly the instances want, in ID order.
func checkIDs(t *testing.T, what string, got []registry.Instance, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("%s: got instances %q, want %q", what, g, want)
	}
}

// expectErr fails unless err wraps target.
func expectErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

// checkEmpty fails if anything is registered; used after calls that must not store anything.
func checkEmpty(ctx context.Context, t *testing.T, r registry.Registry) {
	t.Helper()
	svcs, err := r.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	if len(svcs) != 0 {
		t.Fatalf("a rejected call stored something: Services = %+v", svcs)
	}
}

// sameSet reports whether a and b hold the same strings, ignoring order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// supports asks the backend whether it advertises c.
func supports(ctx context.Context, t *testing.T, r registry.Registry, c registry.Capability) bool {
	t.Helper()
	info, err := r.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	return info.Has(c)
}

func (s *suite) testConcurrency(t *testing.T) {
	const n = 20
	ctx := s.ctx(t)
	r := s.open(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	want := make([]string, n)
	for i := range n {
		inst := instance("web", fmt.Sprintf("web-%02d", i), i)
		want[i] = inst.ID
		wg.Go(func() {
			if err := r.Register(ctx, inst); err != nil {
				errs <- fmt.Errorf("Register(%s): %w", inst.ID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkIDs(t, "after concurrent registrations", instances(ctx, t, r, registry.Query{Name: "web"}), want...)
}

func (s *suite) testClusterStatus(t *testing.T) {
	ctx := s.ctx(t)
	r := s.open(t)
	st, err := r.ClusterStatus(ctx)
	if err != nil {
		t.Fatalf("ClusterStatus: %v", err)
	}
	if st.Backend == "" {
		t.Errorf("ClusterStatus.Backend is empty")
	}
	if len(st.Members) == 0 {
		t.Errorf("ClusterStatus has no members")
	}
	for i, m := range st.Members {
		if m.Name == "" && m.Address == "" {
			t.Errorf("member %d has neither name nor address: %+v", i, m)
		}
	}
}

func (s *suite) testInfo(t *testing.T) {
	ctx := s.ctx(t)
	r := s.open(t)
	info, err := r.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name == "" {
		t.Errorf("Info.Name is empty")
	}
	// The options given to the suite and the capabilities the backend advertises to the CLI
	// must tell the same story.
	claims := map[registry.Capability]bool{
		registry.CapTTL:   s.opts.TTL,
		registry.CapWatch: s.opts.Watch,
		registry.CheckCapability(registry.CheckHTTP): s.opts.Checks,
		registry.CheckCapability(registry.CheckTCP):  s.opts.Checks,
	}
	for c, want := range claims {
		if got := info.Has(c); got != want {
			t.Errorf("Info.Capabilities has %q = %v, but the suite options say %v", c, got, want)
		}
	}
}
