package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/internal/resolve"
	"github.com/sdctl/sdctl/internal/suggest"
	"github.com/sdctl/sdctl/registry"
)

// ResolveOptions holds the parsed flags of `sdctl resolve`.
type ResolveOptions struct {
	OutputOptions
	Target         resolve.Target
	All            bool
	Tags           []string
	Strategy       string
	IncludeWarning bool
	Wait           time.Duration
	Min            int
	Watch          bool

	// waitUntil is when --wait ends, counted from the start of the command.
	waitUntil time.Time
}

func newResolveCmd(f *Factory, runF func(context.Context, *ResolveOptions) error) *cobra.Command {
	opts := &ResolveOptions{}
	cmd := &cobra.Command{
		Use:   "resolve NAME | URL",
		Short: "Print a healthy instance of a service, or rewrite a URL to point at one",
		Long: `Print one healthy instance of a service as HOST:PORT ([ADDR]:PORT for IPv6), chosen by
--strategy. Given a URL such as http://web/path?q, print it with the service name replaced
by the instance: http://10.0.0.5:3000/path?q.

--wait blocks until at least --min healthy instances exist (for CI smoke tests), asking
again while the registry cannot be reached yet (exit 4 if it never answers); --watch
prints the healthy set again on every change until interrupted (one line per change, or
JSON lines with -o json). Round-robin rotates across invocations through a small state file
in $XDG_STATE_HOME/sdctl.

Exit codes: 0 found, 3 no healthy instance, 4 backend unavailable.`,
		Example: `  sdctl resolve web
  curl "$(sdctl resolve http://web/api/users?page=2)"
  sdctl resolve web --all -o json
  sdctl resolve web --strategy round-robin --tag v2
  sdctl resolve web --wait 60s --min 3
  sdctl resolve web --watch -o json
  sdctl resolve web --template '{{.Address}} {{.Port}}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := resolve.ParseTarget(args[0])
			if err != nil {
				return err
			}
			opts.Target = target
			if opts.Min < 1 {
				return usage(fmt.Errorf("resolve: --min must be at least 1, not %d", opts.Min))
			}
			if opts.Wait < 0 {
				return usage(fmt.Errorf("resolve: --wait must not be negative"))
			}
			if err := opts.checkCombinations(cmd.Flags().Changed); err != nil {
				return err
			}
			return dispatch(cmd.Context(), f, opts, runF, runResolve)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.All, "all", "a", false, "print every healthy instance")
	fl.StringArrayVar(&opts.Tags, "tag", nil, "only instances with this tag (repeatable)")
	fl.StringVarP(&opts.Strategy, "strategy", "s", string(resolve.StrategyRandom), "how to pick: random, round-robin, first, weighted")
	fl.BoolVar(&opts.IncludeWarning, "include-warning", false, "count instances in warning state as healthy")
	fl.DurationVarP(&opts.Wait, "wait", "w", 0, "wait up to this long for --min healthy instances")
	fl.IntVar(&opts.Min, "min", 1, "healthy instances required")
	fl.BoolVar(&opts.Watch, "watch", false, "print the healthy instances again on every change until interrupted")
	addOutputFlags(cmd, &opts.OutputOptions, output.FormatTable, "'{{.Address}} {{.Port}}'")
	_ = cmd.RegisterFlagCompletionFunc("strategy", cobra.FixedCompletions(
		[]string{string(resolve.StrategyRandom), string(resolve.StrategyRoundRobin), string(resolve.StrategyFirst), string(resolve.StrategyWeighted)}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = completeServiceNames(f, 0)
	return cmd
}

// checkCombinations refuses flags that the others make meaningless.
func (o *ResolveOptions) checkCombinations(changed func(string) bool) error {
	if err := registry.ValidateTags(o.Tags); err != nil {
		return err
	}
	if o.Watch {
		for _, name := range []string{"wait", "min", "strategy"} {
			if changed(name) {
				return usage(fmt.Errorf("resolve: --watch prints every healthy instance on each change until interrupted: --%s does not apply", name))
			}
		}
	}
	if o.All && changed("strategy") {
		return usage(errors.New("resolve: --all prints every healthy instance: --strategy does not apply"))
	}
	return nil
}

func (o *ResolveOptions) query() registry.Query {
	return registry.Query{Name: o.Target.Name, Tags: o.Tags, HealthyOnly: true, IncludeWarning: o.IncludeWarning}
}

func runResolve(ctx context.Context, f *Factory, opts *ResolveOptions) error {
	strategy, err := resolve.ParseStrategy(opts.Strategy)
	if err != nil {
		return err
	}
	printer, err := opts.printer()
	if err != nil {
		return err
	}
	if opts.Wait > 0 {
		opts.waitUntil = time.Now().Add(opts.Wait)
	}
	reg, err := f.Registry(ctx)
	for opts.Wait > 0 && err != nil && errors.Is(err, registry.ErrUnavailable) {
		// A backend that connects when configured (etcd) is waited for too.
		waitCtx, cancel := context.WithDeadline(ctx, opts.waitUntil)
		f.Logger().Info("registry not reachable yet; asking again", "error", err)
		ok := newBackoff().wait(waitCtx)
		cancel()
		if !ok {
			return fmt.Errorf("resolve %s: after waiting %s: %w", opts.Target.Name, opts.Wait, err)
		}
		reg, err = f.Registry(ctx)
	}
	if err != nil {
		return err
	}
	defer reg.Close()
	if opts.Target.URL != nil && (opts.Watch || opts.Wait > 0) {
		opts.Target.Name = serviceOfHost(ctx, f, reg, opts.Target)
	}
	if opts.Watch {
		return watchResolve(ctx, f, reg, opts, printer)
	}
	return resolveOnce(ctx, f, reg, opts, strategy, printer)
}

// resolveOnce looks the instances up (waiting for them with --wait) and prints the ones picked.
func resolveOnce(ctx context.Context, f *Factory, reg registry.Registry, opts *ResolveOptions, strategy resolve.Strategy, printer output.Printer) error {
	picker := f.picker(strategy, opts)
	q := opts.query()
	// A one-off pick by position lets the backend send one instance instead of all of them.
	var pos uint64
	byPosition := !opts.All && opts.Wait == 0 && opts.Min == 1
	if byPosition {
		if pos, byPosition = picker.Position(); byPosition {
			q.Pick = &pos
		}
	}

	var healthy []registry.Instance
	var err error
	if opts.Wait > 0 {
		healthy, err = waitForInstances(ctx, f, reg, opts)
	} else {
		callCtx, cancel := f.callContext(ctx)
		healthy, err = reg.Instances(callCtx, q)
		cancel()
	}
	if err != nil {
		return fmt.Errorf("resolve %s: %w", opts.Target.Name, err)
	}
	if !opts.enough(healthy) {
		if opts.Target.URL != nil && opts.Wait == 0 {
			if name := serviceOfHost(ctx, f, reg, opts.Target); name != opts.Target.Name {
				opts.Target.Name = name
				return resolveOnce(ctx, f, reg, opts, strategy, printer)
			}
		}
		return noHealthy(ctx, f, reg, opts, opts.counted(healthy))
	}
	picked := healthy
	switch {
	case opts.All:
	case byPosition:
		picked = registry.PickFrom(healthy, pos) // a no-op when the backend applied the pick
	default:
		inst, err := picker.Pick(registry.Pickable(healthy))
		if err != nil {
			return fmt.Errorf("resolve %s: %w", opts.Target.Name, err)
		}
		picked = []registry.Instance{inst}
	}
	return printInstances(f.IO.Out, printer, opts, picked)
}

// serviceOfHost is the service that the host of the URL t names. Host names are
// case-insensitive and service names are not: the host names the service spelt as in lower case
// (t.Name) when there is one, else the one spelt as in the URL, else the only service whose name
// differs from it in case alone. Without any, or when the registry cannot list its services,
// it is t.Name.
func serviceOfHost(ctx context.Context, f *Factory, reg registry.Registry, t resolve.Target) string {
	callCtx, cancel := f.callContext(ctx)
	defer cancel()
	services, err := reg.Services(callCtx)
	if err != nil {
		return t.Name
	}
	written := t.URL.Hostname()
	var exact string
	var folded []string
	for _, s := range services {
		switch {
		case s.Name == t.Name:
			return t.Name
		case s.Name == written:
			exact = s.Name
		case strings.EqualFold(s.Name, t.Name):
			folded = append(folded, s.Name)
		}
	}
	if exact != "" {
		return exact
	}
	if len(folded) == 1 {
		return folded[0]
	}
	return t.Name
}

// noHealthy explains why resolve found fewer healthy instances than required: no such service
// (with the closest names), no instance with the tags, or instances in which states.
func noHealthy(ctx context.Context, f *Factory, reg registry.Registry, opts *ResolveOptions, healthy []registry.Instance) error {
	callCtx, cancel := f.callContext(ctx)
	defer cancel()
	name := opts.Target.Name
	all, err := reg.Instances(callCtx, registry.Query{Name: name})
	if err == nil && len(all) == 0 {
		hint := ""
		if services, err := reg.Services(callCtx); err == nil {
			names := make([]string, len(services))
			for i, s := range services {
				names[i] = s.Name
			}
			if s := suggest.Closest(name, names); s != "" {
				hint = "; did you mean " + s + "?"
			}
		}
		waited := ""
		if opts.Wait > 0 {
			waited = " after waiting " + opts.Wait.String()
		}
		return registry.Errorf(registry.ErrNotFound, "resolve %s: no such service%s%s", name, waited, hint)
	}
	what := "no healthy instance"
	if len(healthy) == 0 && !opts.All && len(registry.Pickable(all)) < len(all) {
		what = "no healthy instance that is not drained"
	}
	if opts.Min > 1 {
		what = fmt.Sprintf("%d healthy instances, %d required", len(healthy), opts.Min)
	}
	if opts.Wait > 0 {
		what += fmt.Sprintf(" after waiting %s", opts.Wait)
	}
	if len(opts.Tags) > 0 {
		what += " with tags " + strings.Join(opts.Tags, ",")
	}
	if err == nil {
		what += " (" + healthCounts(all, registry.Query{Name: name, Tags: opts.Tags}) + ")"
	}
	return registry.Errorf(registry.ErrNotFound, "resolve %s: %s", name, what)
}

// healthCounts says how many instances match q and in which states: "3 instances: 2 critical,
// 1 warning", or how many the service has when none has q's tags.
func healthCounts(all []registry.Instance, q registry.Query) string {
	counts := map[registry.Health]int{}
	n, drained := 0, 0
	for _, in := range all {
		if q.Matches(in) {
			n++
			counts[in.Health.Worse("")]++
			if in.Drain {
				drained++
			}
		}
	}
	if n == 0 {
		return fmt.Sprintf("none of its %s has them", plural(len(all), "instance"))
	}
	var parts []string
	for _, h := range []registry.Health{registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance} {
		if counts[h] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[h], h))
		}
	}
	if drained > 0 {
		parts = append(parts, fmt.Sprintf("%d drained (weight 0)", drained))
	}
	return plural(n, "instance") + ": " + strings.Join(parts, ", ")
}

func (f *Factory) picker(s resolve.Strategy, opts *ResolveOptions) resolve.Picker {
	p := resolve.Picker{Strategy: s, Key: resolve.RoundRobinKey(opts.Target.Name, opts.Tags)}
	if s == resolve.StrategyRoundRobin {
		if path, err := resolve.DefaultStatePath(); err == nil {
			p.Counter = &resolve.FileCounter{Path: path}
		}
		p.Fallback = func(err error) {
			f.Logger().Warn("round-robin state unavailable; picking at random", "error", err)
		}
	}
	return p
}

// printInstances prints the chosen instances: HOST:PORT or the rewritten URL per line for
// text, the instance (or list, with --all) for json, yaml and templates.
func printInstances(w io.Writer, printer output.Printer, opts *ResolveOptions, insts []registry.Instance) error {
	var data any = insts
	if !opts.All && len(insts) == 1 {
		data = insts[0]
	}
	if printer.Format == output.FormatTemplate {
		for _, in := range insts {
			if err := output.ExecuteTemplate(w, printer.Template, in); err != nil {
				return err
			}
		}
		return nil
	}
	return printer.Print(w, data, func(w io.Writer) error {
		for _, in := range insts {
			line, err := opts.Target.Rewrite(in)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
		return nil
	})
}

// counted is what --min counts among the healthy instances: with --all every one printed,
// otherwise those resolve may pick (drained ones are not).
func (o *ResolveOptions) counted(healthy []registry.Instance) []registry.Instance {
	if o.All {
		return healthy
	}
	return registry.Pickable(healthy)
}

func (o *ResolveOptions) enough(healthy []registry.Instance) bool {
	return len(o.counted(healthy)) >= o.Min
}

// errEnough stops a watch once the wanted instances exist.
var errEnough = errors.New("enough instances")

// waitForInstances waits up to opts.Wait for opts.Min healthy instances, following the
// backend's change stream (or polling when it has none), and returns the healthy set. A registry
// that cannot be reached is asked again, with backoff, until the wait ends: in docker-compose and
// CI the registry often starts after its clients. At the end of the wait an unreachable registry
// is "unavailable" (exit 4), not a wait that found nothing.
func waitForInstances(ctx context.Context, f *Factory, reg registry.Registry, opts *ResolveOptions) ([]registry.Instance, error) {
	q := opts.query()
	// The first answer is awaited in full, however short the wait: a wait that ends before the
	// registry has answered once says nothing about the instances.
	first := ctx
	ctx, cancel := context.WithDeadline(ctx, opts.waitUntil)
	defer cancel()
	var healthy []registry.Instance
	retry := newBackoff()
	for {
		callCtx, cancelCall := f.callContext(first)
		first = ctx
		got, err := reg.Instances(callCtx, q)
		cancelCall()
		reached := err == nil
		if err == nil {
			healthy = got
			if opts.enough(healthy) {
				return healthy, nil
			}
			err = followChanges(ctx, f, reg, q, func(all []registry.Instance) error {
				healthy = filter(all, q)
				if opts.enough(healthy) {
					return errEnough
				}
				f.Logger().Debug("waiting for instances", "name", q.Name, "healthy", len(healthy), "min", opts.Min)
				return nil
			})
			if errors.Is(err, errEnough) {
				return healthy, nil
			}
			if errors.Is(err, context.DeadlineExceeded) && time.Until(opts.waitUntil) < time.Second {
				// The backend process saw the wait's deadline a moment before this one did.
				<-ctx.Done()
			}
		}
		if ctx.Err() != nil {
			// A wait that ends while following changes found too few; one that ends while the
			// registry cannot be reached reports that.
			if err != nil && !reached && errors.Is(err, registry.ErrUnavailable) {
				return nil, fmt.Errorf("after waiting %s: %w", opts.Wait, err)
			}
			// The wait is over (the plugin may notice it a moment before we do); the caller
			// reports how many were found.
			return healthy, nil
		}
		if !errors.Is(err, registry.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		f.Logger().Info("registry not reachable yet; asking again", "in", retry.next(), "error", err)
		if !retry.wait(ctx) {
			return nil, fmt.Errorf("after waiting %s: %w", opts.Wait, err)
		}
	}
}

// backoff spaces the attempts of a wait: 250ms, doubling up to 2s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 250 * time.Millisecond} }

func (b *backoff) next() time.Duration { return b.d }

// wait sleeps for the current delay and doubles it; false when ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 2*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watchResolve prints the healthy set on every change until ctx ends.
func watchResolve(ctx context.Context, f *Factory, reg registry.Registry, opts *ResolveOptions, printer output.Printer) error {
	q := opts.query()
	lines := output.NewJSONLines(f.IO.Out)
	err := followChanges(ctx, f, reg, q, func(all []registry.Instance) error {
		healthy := filter(all, q)
		switch printer.Format {
		case output.FormatJSON:
			return lines.Write(healthy)
		case output.FormatTable:
			parts := make([]string, 0, len(healthy))
			for _, in := range healthy {
				s, err := opts.Target.Rewrite(in)
				if err != nil {
					return err
				}
				parts = append(parts, s)
			}
			_, err := fmt.Fprintln(f.IO.Out, strings.Join(parts, " "))
			return err
		default:
			return printer.Print(f.IO.Out, healthy, nil)
		}
	})
	if ctx.Err() != nil {
		return nil //nolint:nilerr // interrupted: the normal way to stop a watch
	}
	return fmt.Errorf("resolve %s --watch: %w", q.Name, err)
}

// followChanges calls fn with the instances of q.Name now and after every change (see
// registry.Follow).
func followChanges(ctx context.Context, f *Factory, reg registry.Registry, q registry.Query, fn func([]registry.Instance) error) error {
	opt := registry.FollowOptions{OnPoll: func() { f.Logger().Debug("backend has no watch; polling", "name", q.Name) }}
	if cfg, err := f.Config(); err == nil {
		opt.CallTimeout = cfg.Timeout()
	}
	return registry.Follow(ctx, reg, q.Name, opt, fn)
}

func filter(insts []registry.Instance, q registry.Query) []registry.Instance {
	out := []registry.Instance{}
	for _, in := range insts {
		if q.Matches(in) {
			out = append(out, in)
		}
	}
	return out
}
