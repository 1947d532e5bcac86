// Package config is the only place sdctl reads configuration. One viper instance merges, in
// order of precedence, command-line flags, SDCTL_* environment variables (plus the usual
// variables of each backend, such as CONSUL_HTTP_ADDR), the config file, and defaults.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/sdctl/sdctl/fsutil"
	"github.com/sdctl/sdctl/internal/xdg"
	"github.com/sdctl/sdctl/plugins/logging"
	"github.com/sdctl/sdctl/registry"
)

// Global keys, valid at the top level of the config file and as SDCTL_<KEY> variables.
const (
	KeyConfig        = "config"
	KeyBackend       = "backend"
	KeyLogLevel      = "log-level"
	KeyTimeout       = "timeout"
	KeyPluginPath    = "plugin-path"
	KeyPluginTimeout = "plugin-timeout"
	KeyPluginMTLS    = "plugin-mtls"
	// KeyPluginIdleTimeout keeps a backend process warm between commands for this long.
	KeyPluginIdleTimeout = "plugin-idle-timeout"
)

// Global describes one global key.
type Global struct {
	Key     string
	Default any
	Help    string
}

// Globals lists every global key with its default; commands declare a persistent flag for each.
var Globals = []Global{
	{KeyBackend, "file", "registry backend: file (default, no server needed), or a plugin listed by 'sdctl backend list'"},
	{KeyLogLevel, "warn", "log level on stderr: " + strings.Join(logging.Levels, ", ")},
	{KeyTimeout, 10 * time.Second, "time limit for each call to the backend"},
	{KeyPluginPath, []string{}, "directories searched first for sdctl-backend-NAME executables (env: colon-separated)"},
	{KeyPluginTimeout, 5 * time.Second, "time limit for a backend plugin to start"},
	{KeyPluginMTLS, false, "never keep built-in or bundled backends warm: each command gets its own over a socket pair, which no other process can reach (external ones always use mutual TLS)"},
	{KeyPluginIdleTimeout, time.Minute, "keep a built-in or bundled backend's process running this long after a command, for the next one to reuse (0: one process per command)"},
}

// Config is the merged configuration of one sdctl invocation.
type Config struct {
	v     *viper.Viper
	flags *pflag.FlagSet
	file  string
	env   func(string) (string, bool)
	// aliases holds the extra environment variables of backend options ("consul.address" →
	// CONSUL_HTTP_ADDR), learnt from the backend's option list.
	aliases map[string][]string
	// overrides names the source of values set by Override.
	overrides map[string]string
	// fileKeys are the keys the config file sets, sorted.
	fileKeys []string
}

// Load merges flags, environment, config file and defaults. flags holds the persistent flags
// named after the global keys (and --config); unset flags do not override anything.
func Load(flags *pflag.FlagSet) (*Config, error) {
	v := viper.NewWithOptions(viper.KeyDelimiter("."))
	c := &Config{v: v, flags: flags, env: os.LookupEnv}
	for _, g := range Globals {
		v.SetDefault(g.Key, g.Default)
		if err := v.BindEnv(g.Key, envName("", g.Key)); err != nil {
			return nil, err
		}
		if f := flags.Lookup(g.Key); f != nil {
			if err := v.BindPFlag(g.Key, f); err != nil {
				return nil, err
			}
		}
	}
	if err := c.readFile(); err != nil {
		return nil, err
	}
	if err := c.validateGlobals(); err != nil {
		return nil, err
	}
	return c, nil
}

// readFile finds and reads the config file: --config / SDCTL_CONFIG, else ./sdctl.yaml, else
// $XDG_CONFIG_HOME/sdctl/config.yaml. Only an explicitly named file must exist.
func (c *Config) readFile() error {
	path, explicit := "", false
	if f := c.flags.Lookup(KeyConfig); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	} else if p, ok := c.env(envName("", KeyConfig)); ok && p != "" {
		path, explicit = p, true
	} else {
		for _, candidate := range DefaultFiles() {
			if _, err := os.Stat(candidate); err == nil {
				path = candidate
				break
			}
		}
	}
	if path == "" {
		return nil
	}
	c.v.SetConfigFile(path)
	if filepath.Ext(path) == "" {
		c.v.SetConfigType("yaml")
	}
	// Read it ourselves: only a regular file, at most fsutil.MaxConfigSize (a device or a FIFO
	// named by mistake must not hang sdctl or fill its memory).
	data, err := fsutil.ReadRegular(path, fsutil.MaxConfigSize)
	if err == nil && isYAML(path) {
		if line := secondDocument(data); line > 0 {
			return &Error{Key: KeyConfig, Source: "config file " + path, Reason: fmt.Sprintf("line %d: a second YAML document (after ---): a config file is one document", line)}
		}
	}
	if err == nil {
		err = c.v.ReadConfig(bytes.NewReader(data))
	}
	if err == nil {
		// The file's own keys, for CheckFileKeys: a second reader of the same bytes sees no
		// defaults or variables.
		fv := viper.NewWithOptions(viper.KeyDelimiter("."))
		fv.SetConfigFile(path)
		if filepath.Ext(path) == "" {
			fv.SetConfigType("yaml")
		}
		if err = fv.ReadConfig(bytes.NewReader(data)); err == nil {
			c.fileKeys = fv.AllKeys()
			sort.Strings(c.fileKeys)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return nil
		}
		return &Error{Key: KeyConfig, Source: "config file " + path, Reason: strings.TrimSpace(err.Error())}
	}
	c.file = path
	return nil
}

func isYAML(path string) bool {
	switch filepath.Ext(path) {
	case "", ".yaml", ".yml":
		return true
	}
	return false
}

// secondDocument is the line of a second YAML document in data, or 0 when there is none:
// viper reads only the first, so the keys after a "---" would be ignored. An empty document,
// as a trailing "---" makes, is not one; text that does not parse is left to viper to report.
func secondDocument(data []byte) int {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 0; ; n++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return 0
		}
		if len(doc.Content) == 1 && doc.Content[0].Tag == "!!null" {
			continue
		}
		if n > 0 {
			return doc.Line
		}
	}
}

// DefaultFiles lists the config files looked for when none is named, in order.
func DefaultFiles() []string {
	files := []string{"sdctl.yaml"}
	if dir, err := xdg.ConfigHome(); err == nil {
		files = append(files, filepath.Join(dir, "sdctl", "config.yaml"))
	}
	return files
}

// File is the config file in use, or "" when there is none.
func (c *Config) File() string { return c.file }

func (c *Config) validateGlobals() error {
	name := c.Backend()
	if name == "" {
		return c.invalid(KeyBackend, "backend name is empty")
	}
	if err := registry.ValidateName(name); err != nil {
		return c.invalid(KeyBackend, "%q is not a backend name", name)
	}
	if _, err := logging.ParseLevel(c.v.GetString(KeyLogLevel)); err != nil {
		return c.invalid(KeyLogLevel, "%v", err)
	}
	for _, key := range []string{KeyTimeout, KeyPluginTimeout} {
		d, err := c.duration(key)
		if err != nil {
			return err
		}
		if d <= 0 {
			return c.invalid(key, "%s must be positive", d)
		}
	}
	if _, err := parseBool(c.v.Get(KeyPluginMTLS)); err != nil {
		return c.invalid(KeyPluginMTLS, "%v", err)
	}
	d, err := c.duration(KeyPluginIdleTimeout)
	if err != nil {
		return err
	}
	if d < 0 {
		return c.invalid(KeyPluginIdleTimeout, "%s must not be negative", d)
	}
	return nil
}

// Backend is the selected backend's name.
func (c *Config) Backend() string { return strings.TrimSpace(c.v.GetString(KeyBackend)) }

// LogLevel is the validated --log-level.
func (c *Config) LogLevel() string { return c.v.GetString(KeyLogLevel) }

// Timeout bounds each backend call.
func (c *Config) Timeout() time.Duration { d, _ := c.duration(KeyTimeout); return d }

// PluginTimeout bounds a plugin's start.
func (c *Config) PluginTimeout() time.Duration { d, _ := c.duration(KeyPluginTimeout); return d }

// PluginIdleTimeout is how long a backend process waits for the next command (0: it stops
// with each command).
func (c *Config) PluginIdleTimeout() time.Duration {
	d, _ := c.duration(KeyPluginIdleTimeout)
	return d
}

// PluginMTLS reports whether no plugin channel may be reachable without proof of identity:
// built-in and bundled backends are then never kept warm (see docs/security.md).
func (c *Config) PluginMTLS() bool { b, _ := parseBool(c.v.Get(KeyPluginMTLS)); return b }

// PluginDirs lists where external backends are looked for: plugin-path, then
// $XDG_DATA_HOME/sdctl/plugins, then the directory holding the sdctl binary.
func (c *Config) PluginDirs(executable string) []string {
	dirs := listValue(c.v.Get(KeyPluginPath), string(os.PathListSeparator))
	if data, err := xdg.DataHome(); err == nil {
		dirs = append(dirs, filepath.Join(data, "sdctl", "plugins"))
	}
	if executable != "" {
		dirs = append(dirs, filepath.Dir(executable))
	}
	return dirs
}

func (c *Config) duration(key string) (time.Duration, error) {
	raw := c.v.Get(key)
	switch val := raw.(type) {
	case time.Duration:
		return val, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			return 0, c.invalid(key, "%q is not a duration (like 500ms, 10s, 2m: the unit is required)", val)
		}
		return d, nil
	}
	// A bare number is refused from every source alike: 10 could mean seconds or nanoseconds.
	return 0, c.invalid(key, "%v is not a duration (like 500ms, 10s, 2m: the unit is required)", raw)
}

func parseBool(raw any) (bool, error) {
	switch val := raw.(type) {
	case bool:
		return val, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(val)) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("%v is not true or false", raw)
}

// listValue accepts a YAML list or a string separated by sep (and commas).
func listValue(raw any, sep string) []string {
	var parts []string
	switch val := raw.(type) {
	case []string:
		parts = val
	case []any:
		for _, p := range val {
			parts = append(parts, fmt.Sprint(p))
		}
	case string:
		parts = strings.FieldsFunc(val, func(r rune) bool { return strings.ContainsRune(sep+",", r) })
	}
	out := parts[:0:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// envName is the SDCTL_* variable for a key within a backend section (or globally, for "").
func envName(section, key string) string {
	name := key
	if section != "" {
		name = section + "_" + key
	}
	return "SDCTL_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}
