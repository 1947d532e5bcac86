package commands

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/registry"
)

// WatchOptions holds the parsed flags and argument of `sdctl watch`.
type WatchOptions struct {
	// URI is the Registrator-style registry argument; empty uses the configured backend.
	URI string

	Internal         bool
	IP               string
	Tags             []string
	TTL              time.Duration
	TTLRefresh       time.Duration
	Resync           time.Duration
	Deregister       string
	RetryAttempts    int
	RetryInterval    time.Duration
	Cleanup          bool
	Explicit         bool
	IPFromLabel      string
	NodeID           string
	Network          string
	HealthStarting   string
	DeregisterOnExit bool
	Listen           string
	DockerHost       string
	Workers          int
	Labels           []string
}

// WatchEngine runs `sdctl watch` once its flags are parsed and checked and the registry URI is
// applied to the configuration. sdctl itself has none: the engine links the Docker client, whose
// package initialisation every other command would pay for, so it lives in the sdctl-watch
// executable beside sdctl, which `sdctl watch` replaces itself with (see execWatch).
type WatchEngine func(ctx context.Context, f *Factory, o *WatchOptions) error

func newWatchCmd(f *Factory, runF func(context.Context, *WatchOptions) error) *cobra.Command {
	o := &WatchOptions{RetryInterval: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "watch [REGISTRY-URI]",
		Short: "Register Docker containers' ports as they start, remove them as they stop",
		Long: `Follow the Docker engine's events and keep the registry in step with the running
containers: each published port (each exposed port with --internal) of a running container is
an instance, named and tagged by the container's SERVICE_* environment variables and labels,
the same conventions Registrator uses. See docs/watch.md and docs/migrating-from-registrator.md.

The registry is the configured backend (--backend, SDCTL_BACKEND, config file), or the
Registrator-style URI argument: consul://[HOST:PORT[,HOST:PORT...]], consul-tls://HOST:PORT,
etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or file:///PATH.

Instances are marked as owned by this node (the Docker engine's name, or --node-id). On start,
after a Docker reconnection, a backend restart and every --resync, the watcher reconciles:
it adds what runs and is missing, removes what this node owns that no longer runs, and writes
nothing when nothing changed. Failed registry writes are retried with backoff.

Logs go to stderr, one line per action (added, updated, removed, ignored, skipped, failed).
Registrator's single-dash flags (-internal, -useIpFromLabel ...) are accepted too.`,
		Example: `  sdctl watch
  sdctl watch --internal consul://127.0.0.1:8500
  sdctl watch --backend etcd --resync 60 --cleanup --deregister-on-exit
  sdctl watch --listen :9090 --label com.docker.compose.project=shop consul://127.0.0.1:8500`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.URI = args[0]
			}
			return dispatch(cmd.Context(), f, o, runF, runWatch)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.Internal, "internal", false, "register the container IP and exposed port instead of the host IP and published port")
	fl.StringVar(&o.IP, "ip", "", "IP address to register for published ports (default: the binding's address, else this host's)")
	fl.StringSliceVar(&o.Tags, "tags", nil, "tags added to every instance (comma-separated)")
	fl.Var(&registratorDuration{&o.TTL, time.Second}, "ttl", "TTL of each instance; renewed while its container runs (bare number: seconds)")
	fl.Var(&registratorDuration{&o.TTLRefresh, time.Second}, "ttl-refresh", "how often TTL instances are renewed (default and at most: a third of each TTL; bare number: seconds)")
	fl.Var(&registratorDuration{&o.Resync, time.Second}, "resync", "period of a full reconcile; 0 reconciles only on start and reconnects (bare number: seconds)")
	fl.StringVar(&o.Deregister, "deregister", "always", "when a container exits: always deregister, or on-success (keep failed containers)")
	fl.IntVar(&o.RetryAttempts, "retry-attempts", -1, "extra attempts to reach the registry at start (-1: wait forever)")
	fl.Var(&registratorDuration{&o.RetryInterval, time.Millisecond}, "retry-interval", "longest pause between those attempts, reached by doubling from 250ms (bare number: milliseconds)")
	fl.BoolVar(&o.Cleanup, "cleanup", false, "also remove Registrator-format entries of this node that no running container backs")
	fl.BoolVar(&o.Explicit, "explicit", false, "only register ports that have a name (SERVICE_NAME or SERVICE_<port>_NAME)")
	fl.StringVar(&o.IPFromLabel, "use-ip-from-label", "", "container label whose value is the IP to register")
	fl.StringVar(&o.NodeID, "node-id", "", "node identity that marks what this watcher owns (default: the Docker engine's name)")
	fl.StringVar(&o.Network, "network", "", "network whose container IP is registered with --internal (containers override with SERVICE_NETWORK)")
	fl.StringVar(&o.HealthStarting, "health-starting", "critical", "health of containers whose Docker healthcheck is still starting: critical, warning or passing")
	fl.BoolVar(&o.DeregisterOnExit, "deregister-on-exit", false, "remove everything this node registered when sdctl watch stops (SIGTERM, SIGINT)")
	fl.StringVar(&o.Listen, "listen", "", "address to serve /healthz and Prometheus /metrics on, e.g. :9090")
	fl.StringVar(&o.DockerHost, "docker-host", "", "Docker engine address (default: DOCKER_HOST, else the local socket)")
	fl.IntVar(&o.Workers, "workers", 8, "containers synced in parallel")
	fl.StringArrayVar(&o.Labels, "label", nil, "only containers with this label, KEY or KEY=VALUE (repeatable; all must match), e.g. com.docker.compose.project=shop")
	_ = cmd.RegisterFlagCompletionFunc("deregister", cobra.FixedCompletions([]string{"always", "on-success"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("health-starting", cobra.FixedCompletions([]string{"critical", "warning", "passing"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// registratorDuration is a duration flag that also takes a bare number in Registrator's unit
// (seconds for -ttl and -resync, milliseconds for -retry-interval).
type registratorDuration struct {
	d    *time.Duration
	unit time.Duration
}

func (r *registratorDuration) String() string {
	if r.d == nil || *r.d == 0 {
		return "0"
	}
	return r.d.String()
}

func (r *registratorDuration) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return fmt.Errorf("%q is negative", s)
		}
		*r.d = time.Duration(n) * r.unit
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 30s or 2m) or a number", s)
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*r.d = d
	return nil
}

func (r *registratorDuration) Type() string { return "duration" }

// registratorFlags maps Registrator's single-dash flag spellings to sdctl's, so a Registrator
// command line works unchanged after `sdctl watch`.
var registratorFlags = map[string]string{
	"-internal": "--internal", "-ip": "--ip", "-tags": "--tags", "-ttl": "--ttl",
	"-ttl-refresh": "--ttl-refresh", "-resync": "--resync", "-deregister": "--deregister",
	"-retry-attempts": "--retry-attempts", "-retry-interval": "--retry-interval",
	"-cleanup": "--cleanup", "-explicit": "--explicit", "-useIpFromLabel": "--use-ip-from-label",
}

// registratorArgs rewrites Registrator-style flags in the arguments of `sdctl watch`: only when
// watch is the command, that is the first argument that is not a global flag or its value.
func registratorArgs(args []string) []string {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		name := strings.TrimLeft(args[i], "-")
		if !strings.Contains(name, "=") && globalTakesValue(name) {
			i++ // the flag's value
		}
		i++
	}
	if i >= len(args) || args[i] != "watch" {
		return args
	}
	out := append([]string(nil), args...)
	for j := i + 1; j < len(out); j++ {
		if out[j] == "--" {
			break
		}
		name, val, hasVal := strings.Cut(out[j], "=")
		if long, ok := registratorFlags[name]; ok {
			if hasVal {
				out[j] = long + "=" + val
			} else {
				out[j] = long
			}
		}
	}
	return out
}

// globalTakesValue reports whether the global flag called name takes a separate value.
func globalTakesValue(name string) bool {
	if name == config.KeyConfig {
		return true
	}
	for _, g := range config.Globals {
		if g.Key == name {
			_, isBool := g.Default.(bool)
			return !isBool
		}
	}
	return false
}

// applyRegistryURI turns a Registrator-style registry URI into backend settings.
func applyRegistryURI(cfg *config.Config, uri string) error {
	bad := func(format string, args ...any) error {
		return usage(fmt.Errorf("registry URI %q: %s", uri, fmt.Sprintf(format, args...)))
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return bad("want SCHEME://HOST:PORT[/PATH], e.g. consul://127.0.0.1:8500")
	}
	host, path, _ := strings.Cut(rest, "/")
	const src = "registry URI argument"
	// An empty host (consul://) keeps the backend's configured or default address, as
	// Registrator used the local agent then.
	hosts := func() ([]string, error) {
		if host == "" {
			return nil, nil
		}
		var out []string
		for _, h := range strings.Split(host, ",") {
			if _, _, err := registry.ParseHostPort(h); err != nil {
				return nil, bad("%v", err)
			}
			out = append(out, h)
		}
		return out, nil
	}
	switch scheme {
	case "consul", "consul-tls":
		hs, err := hosts()
		if err != nil {
			return err
		}
		if path != "" {
			return bad("consul takes no path")
		}
		cfg.Override(config.KeyBackend, "consul", src)
		if hs != nil {
			cfg.Override("consul.address", hs, src)
		}
		if scheme == "consul-tls" {
			cfg.Override("consul.ssl", "true", src)
		}
	case "etcd":
		hs, err := hosts()
		if err != nil {
			return err
		}
		cfg.Override(config.KeyBackend, "etcd", src)
		if hs != nil {
			cfg.Override("etcd.endpoints", hs, src)
		}
		if path != "" {
			cfg.Override("etcd.prefix", "/"+strings.Trim(path, "/"), src)
		}
	case "file":
		if host != "" {
			return bad("file URIs have no host: file:///path/to/registry.json")
		}
		u, err := url.Parse(uri)
		if err != nil || u.Path == "" {
			return bad("want file:///path/to/registry.json")
		}
		cfg.Override(config.KeyBackend, "file", src)
		cfg.Override("file.path", u.Path, src)
	case "consul-unix", "consulkv", "consulkv-unix", "skydns2", "zookeeper":
		return bad("Registrator's %s backend is not supported; sdctl supports consul, consul-tls, etcd and file (see docs/migrating-from-registrator.md)", scheme)
	default:
		return bad("unknown scheme %q (want consul, consul-tls, etcd or file)", scheme)
	}
	return nil
}

func (o *WatchOptions) validate() error {
	if o.Deregister != "always" && o.Deregister != "on-success" {
		return usage(fmt.Errorf("--deregister: %q is not always or on-success", o.Deregister))
	}
	if o.RetryAttempts < -1 {
		return usage(fmt.Errorf("--retry-attempts: %d is below -1 (-1 retries forever)", o.RetryAttempts))
	}
	if o.RetryInterval <= 0 {
		return usage(errors.New("--retry-interval: must be above 0"))
	}
	if o.TTLRefresh > 0 && o.TTL > 0 && o.TTLRefresh >= o.TTL {
		return usage(fmt.Errorf("--ttl-refresh (%s) must be shorter than --ttl (%s)", o.TTLRefresh, o.TTL))
	}
	if o.TTLRefresh > 0 && o.TTL == 0 {
		return usage(errors.New("--ttl-refresh needs --ttl"))
	}
	switch registry.Health(o.HealthStarting) {
	case registry.HealthCritical, registry.HealthWarning, registry.HealthPassing:
	default:
		return usage(fmt.Errorf("--health-starting: %q is not critical, warning or passing", o.HealthStarting))
	}
	if o.IP != "" {
		if ip := net.ParseIP(o.IP); ip == nil {
			return usage(fmt.Errorf("--ip: %q is not an IP address", o.IP))
		}
	}
	if o.NodeID != "" && (strings.Contains(o.NodeID, ":") || registry.ValidateID(o.NodeID) != nil) {
		return usage(fmt.Errorf("--node-id: %q must be a non-empty name without ':', '/' or spaces", o.NodeID))
	}
	if o.Network != "" && strings.ContainsAny(o.Network, " /") {
		return usage(fmt.Errorf("--network: %q is not a network name", o.Network))
	}
	if o.Network != "" && !o.Internal {
		return usage(errors.New("--network needs --internal: it picks the network whose container IP is registered, and without --internal the host's address is"))
	}
	if o.Workers < 1 {
		return usage(fmt.Errorf("--workers: %d is below 1", o.Workers))
	}
	for _, l := range o.Labels {
		if k, _, _ := strings.Cut(l, "="); k == "" {
			return usage(fmt.Errorf("--label: %q has no key (want KEY or KEY=VALUE)", l))
		}
	}
	for _, t := range o.Tags {
		if strings.Contains(t, "{{") {
			return usage(fmt.Errorf("--tags: %q: Go templates in tags are not supported; give the tags themselves", t))
		}
		if err := registry.ValidateTags([]string{t}); err != nil {
			return usage(fmt.Errorf("--tags: %w", err))
		}
	}
	if o.Listen != "" {
		if _, _, err := net.SplitHostPort(o.Listen); err != nil {
			return usage(fmt.Errorf("--listen: %q: %v (want HOST:PORT or :PORT)", o.Listen, err))
		}
	}
	return nil
}

// runWatch checks the options and the configuration, then hands over to the engine: the
// factory's, or the sdctl-watch executable's (see WatchEngine).
func runWatch(ctx context.Context, f *Factory, o *WatchOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	if o.URI != "" {
		if err := applyRegistryURI(cfg, o.URI); err != nil {
			return err
		}
	}
	if f.WatchEngine == nil {
		return execWatch(f)
	}
	// The watcher's action lines are its output: show them unless a level was chosen.
	if cfg.Source(config.KeyLogLevel) == "default" {
		cfg.Override(config.KeyLogLevel, "info", "default for sdctl watch")
	}
	return f.WatchEngine(ctx, f, o)
}
