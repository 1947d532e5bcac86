package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/hostaddr"
	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/registry"
)

// RegisterOptions holds the parsed flags of `sdctl register`.
type RegisterOptions struct {
	Name, HostPort string
	Address        string
	Port           int
	ID             string
	Tags           []string
	Meta           []string
	Weight         int
	TTL            time.Duration
	Keepalive      bool
	File           string

	CheckHTTP, CheckTCP, CheckGRPC string
	CheckInterval, CheckTimeout    time.Duration
	CheckDeregisterAfter           time.Duration
	CheckInitialStatus             string
	CheckTLSSkipVerify             bool

	// drain is --weight 0: listed, never picked.
	drain bool
	// changed reports whether a flag was given on the command line.
	changed func(string) bool
}

func newRegisterCmd(f *Factory, runF func(context.Context, *RegisterOptions) error) *cobra.Command {
	opts := &RegisterOptions{}
	cmd := &cobra.Command{
		Use:   "register NAME [HOST:PORT] | -f FILE",
		Short: "Register a service instance",
		Long: `Register a service instance, or a batch of them from a YAML or JSON file.

The address is HOST:PORT ([ADDR]:PORT for IPv6) or --address/--port. An empty host
(":3000") means this machine's outbound address. The instance ID defaults to
NAME-ADDRESS-PORT and is printed on stdout. Registering an existing ID replaces it.

With --ttl the instance turns critical unless renewed within the TTL; --keepalive stays
in the foreground renewing it every third of the TTL, so that one failed renewal is not
enough to turn it critical, and deregisters on SIGINT or SIGTERM (within 5s, or
--timeout when shorter; past that it says so and the TTL removes the instance). Without another
check, --check-initial-status sets the health before the first renewal and
--check-deregister-after removes the instance once its TTL has run out that long
(file and consul backends).

-f FILE (- for stdin) registers every instance of a YAML or JSON file, in the form sdctl
prints them (resolve --all -o json, catalog NAME -o yaml read back): a list of instances,
{instances: [...]}, or one instance. Keys of an instance: id (default NAME-ADDRESS-PORT),
name, address, port (required), tags, meta, weight (1-65535), ttl ("10s"), health
(declared: passing, warning, critical, maintenance), checks (kind, target, interval,
timeout, deregister_after, method, header, tls_skip_verify, initial_status); node and
expires are reported by the registry and ignored. An unknown key, a duplicate ID or an
invalid entry refuses the whole file before anything is written. --tag and --meta apply
to every entry. Reference: docs/batch-files.md.`,
		Example: `  sdctl register web 10.0.0.5:3000 --tag v2 --meta version=2.1
  sdctl register web --address 10.0.0.5 --port 3000 --id web-1
  sdctl register --ttl 10s --keepalive web :3000 &
  sdctl register --ttl 10s --check-deregister-after 1m --keepalive web :3000 &
  sdctl register api 10.0.0.7:8080 --check-http http://10.0.0.7:8080/health --check-interval 5s
  sdctl register -f services.yaml
  sdctl resolve web --all -o json | sdctl register -f - --tag migrated`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				opts.Name = args[0]
			}
			if len(args) > 1 {
				opts.HostPort = args[1]
			}
			opts.changed = cmd.Flags().Changed
			return dispatch(cmd.Context(), f, opts, runF, runRegister)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Address, "address", "", "instance address (instead of HOST in HOST:PORT)")
	fl.IntVar(&opts.Port, "port", 0, "instance port (instead of PORT in HOST:PORT)")
	fl.StringVar(&opts.ID, "id", "", "instance ID (default NAME-ADDRESS-PORT)")
	fl.StringArrayVar(&opts.Tags, "tag", nil, "tag the instance (repeatable)")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "metadata KEY=VALUE (repeatable)")
	fl.IntVar(&opts.Weight, "weight", 0, "weight for the weighted strategy, 1-65535 (default 1); 0 drains: listed, never picked")
	fl.DurationVar(&opts.TTL, "ttl", 0, "turn critical unless renewed within this time")
	fl.BoolVar(&opts.Keepalive, "keepalive", false, "stay in the foreground renewing the TTL; deregister on exit")
	fl.StringVarP(&opts.File, "file", "f", "", "register the instances in a YAML or JSON file (- for stdin)")
	fl.StringVar(&opts.CheckHTTP, "check-http", "", "HTTP health check URL, run by the backend")
	fl.StringVar(&opts.CheckTCP, "check-tcp", "", "TCP health check HOST:PORT, run by the backend")
	fl.StringVar(&opts.CheckGRPC, "check-grpc", "", "gRPC health check HOST:PORT[/SERVICE], run by the backend")
	fl.DurationVar(&opts.CheckInterval, "check-interval", 10*time.Second, "how often the backend runs the check")
	fl.DurationVar(&opts.CheckTimeout, "check-timeout", 0, "time limit of one check (backend default when 0)")
	fl.DurationVar(&opts.CheckDeregisterAfter, "check-deregister-after", 0, "remove the instance after the check is critical this long")
	fl.StringVar(&opts.CheckInitialStatus, "check-initial-status", "", "status before the first check: passing, warning or critical")
	fl.BoolVar(&opts.CheckTLSSkipVerify, "check-tls-skip-verify", false, "do not verify the certificate of an https check")
	_ = cmd.RegisterFlagCompletionFunc("check-initial-status", cobra.FixedCompletions([]string{"passing", "warning", "critical"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = completeServiceNames(f, 1)
	return cmd
}

// instances turns the options into validated instances, reading the batch file if there is one.
// changed reports whether a flag was given on the command line.
func (o *RegisterOptions) instances(in io.Reader, changed func(string) bool) ([]registry.Instance, error) {
	if err := o.checkFlags(changed); err != nil {
		return nil, err
	}
	if o.File != "" {
		if o.Name != "" || o.HostPort != "" {
			return nil, usage(errors.New("register: -f FILE cannot be combined with NAME or HOST:PORT"))
		}
		for _, name := range perInstanceFlags {
			if changed(name) {
				return nil, usage(fmt.Errorf("register: --%s applies to one instance, not to -f FILE: set it in each entry of the file (--tag and --meta apply to every entry)", name))
			}
		}
		insts, err := readBatch(o.File, in)
		if err != nil {
			return nil, err
		}
		meta, err := parseMetaFlags(o.Meta)
		if err != nil {
			return nil, err
		}
		return insts, applyToBatch(insts, o.Tags, meta)
	}
	if o.Name == "" {
		return nil, usage(errors.New("register: missing NAME (see 'sdctl register --help')"))
	}
	inst, err := o.instance(changed("port"))
	if err != nil {
		return nil, err
	}
	return []registry.Instance{inst}, nil
}

// perInstanceFlags describe one instance and cannot apply to a whole batch file.
var perInstanceFlags = []string{"address", "port", "id", "weight", "ttl", "keepalive",
	"check-http", "check-tcp", "check-grpc", "check-interval", "check-timeout",
	"check-deregister-after", "check-initial-status", "check-tls-skip-verify"}

// checkFlags refuses check settings that no check would use, and values out of range.
func (o *RegisterOptions) checkFlags(changed func(string) bool) error {
	if changed("weight") {
		if err := registry.ValidateWeight(o.Weight); err != nil {
			return err
		}
		o.drain = o.Weight == 0
	}
	if changed("id") && o.ID == "" {
		return registry.ValidateID(o.ID) // --id "" is not the default ID: leave it out for that
	}
	if o.File != "" {
		return nil // the batch rules above name these flags
	}
	hasCheck := o.CheckHTTP != "" || o.CheckTCP != "" || o.CheckGRPC != ""
	for _, name := range []string{"check-interval", "check-timeout"} {
		if changed(name) && !hasCheck {
			return usage(fmt.Errorf("register: --%s needs a check: --check-http, --check-tcp or --check-grpc", name))
		}
	}
	for _, name := range []string{"check-deregister-after", "check-initial-status"} {
		if changed(name) && !hasCheck && o.TTL <= 0 {
			return usage(fmt.Errorf("register: --%s needs a check (--check-http, --check-tcp, --check-grpc) or a --ttl", name))
		}
	}
	if changed("check-tls-skip-verify") && o.CheckHTTP == "" && o.CheckGRPC == "" {
		return usage(errors.New("register: --check-tls-skip-verify needs an https or gRPC check: --check-http or --check-grpc"))
	}
	return nil
}

func parseMetaFlags(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	meta := map[string]string{}
	for _, kv := range flags {
		k, v, err := registry.ParseMeta(kv)
		if err != nil {
			return nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, registry.Invalidf("meta", "key %q is given twice", k)
		}
		meta[k] = v
	}
	return meta, nil
}

func (o *RegisterOptions) instance(portSet bool) (registry.Instance, error) {
	inst := registry.Instance{Name: o.Name, ID: o.ID, Tags: o.Tags, Weight: o.Weight, Drain: o.drain, TTL: o.TTL}
	switch {
	case o.HostPort != "" && (o.Address != "" || portSet):
		return inst, usage(errors.New("register: give HOST:PORT or --address/--port, not both"))
	case o.HostPort != "":
		host, port, err := registry.ParseHostPort(o.HostPort)
		if err != nil {
			return inst, err
		}
		inst.Address, inst.Port = host, port
	case portSet:
		if err := registry.ValidatePort(o.Port); err != nil {
			return inst, err
		}
		inst.Address, inst.Port = o.Address, o.Port
	default:
		return inst, usage(errors.New("register: missing HOST:PORT (or --port)"))
	}
	if inst.Address == "" {
		inst.Address = outboundAddress()
	}
	meta, err := parseMetaFlags(o.Meta)
	if err != nil {
		return inst, err
	}
	inst.Meta = meta
	checks, err := o.checks()
	if err != nil {
		return inst, err
	}
	inst.Checks = checks
	if inst.ID == "" {
		inst.ID = registry.DefaultID(inst.Name, inst.Address, inst.Port)
	}
	if o.Keepalive && o.TTL <= 0 {
		return inst, usage(errors.New("register: --keepalive needs --ttl (for example --ttl 10s)"))
	}
	return inst, inst.Validate()
}

func (o *RegisterOptions) checks() ([]registry.Check, error) {
	var out []registry.Check
	add := func(kind registry.CheckKind, target string) {
		if target != "" {
			out = append(out, registry.Check{
				Kind: kind, Target: target, Interval: o.CheckInterval, Timeout: o.CheckTimeout,
				DeregisterAfter: o.CheckDeregisterAfter, TLSSkipVerify: o.CheckTLSSkipVerify,
				InitialStatus: registry.Health(o.CheckInitialStatus),
			})
		}
	}
	add(registry.CheckHTTP, o.CheckHTTP)
	add(registry.CheckTCP, o.CheckTCP)
	add(registry.CheckGRPC, o.CheckGRPC)
	if len(out) == 0 && o.TTL > 0 && (o.CheckInitialStatus != "" || o.CheckDeregisterAfter > 0) {
		// With no check of its own, the instance's TTL takes the initial status and deregister-after.
		out = append(out, registry.Check{Kind: registry.CheckTTL, DeregisterAfter: o.CheckDeregisterAfter,
			InitialStatus: registry.Health(o.CheckInitialStatus)})
	}
	if o.CheckHTTP != "" {
		if u, err := url.Parse(o.CheckHTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, registry.Invalidf("check-http", "%q is not an http:// or https:// URL", o.CheckHTTP)
		}
	}
	if o.CheckTCP != "" {
		if host, _, err := registry.ParseHostPort(o.CheckTCP); err != nil || host == "" {
			return nil, registry.Invalidf("check-tcp", "%q is not HOST:PORT", o.CheckTCP)
		}
	}
	if o.CheckInterval <= 0 && (o.CheckHTTP != "" || o.CheckTCP != "" || o.CheckGRPC != "") {
		return nil, registry.Invalidf("check-interval", "must be positive")
	}
	for _, c := range out {
		if err := registry.ValidateCheck(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// outboundAddress is the address an instance registered from this machine gets when no host
// is given: hostaddr's guess, else loopback.
func outboundAddress() string {
	return cmp.Or(hostaddr.Outbound(), "127.0.0.1")
}

func runRegister(ctx context.Context, f *Factory, opts *RegisterOptions) error {
	insts, err := opts.instances(f.IO.In, opts.changed)
	if err != nil {
		return err
	}
	reg, err := f.Registry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	// Refuse what the backend cannot store before writing anything, so a batch is all or nothing
	// as far as sdctl can tell in advance.
	infoCtx, cancelInfo := f.callContext(ctx)
	info, err := reg.Info(infoCtx)
	cancelInfo()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	for _, inst := range insts {
		if err := info.Supports(inst); err != nil {
			return err
		}
	}
	if batch, ok := reg.(registry.BatchRegisterer); ok && len(insts) > 1 && batches(reg, info) {
		// One call (for the file backend one lock and one rewrite) for the whole batch.
		callCtx, cancel := f.callContext(ctx)
		err := batch.RegisterBatch(callCtx, insts)
		cancel()
		if err != nil {
			return fmt.Errorf("register -f: %w", err)
		}
		for _, inst := range insts {
			fmt.Fprintln(f.IO.Out, inst.ID)
		}
		return nil
	}
	for _, inst := range insts {
		callCtx, cancel := f.callContext(ctx)
		err := reg.Register(callCtx, inst)
		cancel()
		if err != nil {
			return fmt.Errorf("register %s: %w", inst.ID, err)
		}
		fmt.Fprintln(f.IO.Out, inst.ID)
	}
	if !opts.Keepalive {
		return nil
	}
	return keepalive(ctx, f, reg, insts[0])
}

// batches reports whether reg registers a batch in one call: across the plugin boundary when
// both sides agreed on it, in process when the registry advertises it.
func batches(reg registry.Registry, info registry.Info) bool {
	if c, ok := reg.(interface{ Batches() bool }); ok {
		return c.Batches()
	}
	return info.Has(registry.CapBatchRegister)
}

// exitDeregisterBound bounds the deregistration of --keepalive on exit.
const exitDeregisterBound = 5 * time.Second

// keepalive renews inst's TTL every third of it (registry.RenewEvery) until ctx ends,
// re-registering it if it went missing, then deregisters it.
func keepalive(ctx context.Context, f *Factory, reg registry.Registry, inst registry.Instance) error {
	log := f.Logger()
	tick := time.NewTicker(registry.RenewEvery(inst.TTL))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// A fresh context: the signal that ended ctx must not stop the clean-up. It is bounded
			// well below Docker's 10 s stop grace, so the process exits before a SIGKILL would.
			bound := exitDeregisterBound
			if cfg, err := f.Config(); err == nil {
				bound = min(cfg.Timeout(), bound)
			}
			callCtx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			if err := reg.Deregister(callCtx, inst.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("could not deregister %s on exit within %s; it stays until its TTL (%s) runs out: %w", inst.ID, bound, inst.TTL, err)
			}
			log.Info("deregistered on exit", "id", inst.ID)
			return nil
		case <-tick.C:
		}
		callCtx, cancel := f.callContext(ctx)
		err := reg.Heartbeat(callCtx, inst.ID)
		if errors.Is(err, registry.ErrNotFound) {
			log.Warn("instance disappeared from the registry; registering it again", "id", inst.ID)
			err = reg.Register(callCtx, inst)
		}
		cancel()
		switch {
		case err == nil:
			log.Debug("renewed", "id", inst.ID)
		case errors.Is(err, host.ErrPluginExited):
			return err
		case ctx.Err() != nil:
		default:
			log.Warn("renewing the TTL failed; retrying", "id", inst.ID, "error", strings.TrimSpace(err.Error()))
		}
	}
}
