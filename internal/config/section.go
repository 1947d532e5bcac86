package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sdctl/sdctl/registry"
)

// Error is a bad configuration value: which key, where it came from, and why.
type Error struct {
	Key    string
	Source string
	Reason string
}

func (e *Error) Error() string {
	return RedactURLs(fmt.Sprintf("invalid %s (from %s): %s", e.Key, e.Source, e.Reason))
}

// Is makes errors.Is(err, registry.ErrInvalid) hold, so bad configuration exits with the usage code.
func (e *Error) Is(target error) bool { return target == registry.ErrInvalid }

func (c *Config) invalid(key, format string, args ...any) error {
	return &Error{Key: key, Source: c.Source(key), Reason: fmt.Sprintf(format, args...)}
}

// Source says where the value of key comes from: a flag, an environment variable, the config
// file, or the default.
func (c *Config) Source(key string) string {
	if src, ok := c.overrides[key]; ok {
		return src
	}
	if f := c.flags.Lookup(key); f != nil && f.Changed {
		return "flag --" + key
	}
	for _, env := range c.envNames(key) {
		if val, ok := c.env(env); ok && val != "" {
			return "env " + env
		}
	}
	if c.file != "" && c.v.InConfig(key) {
		return "config file " + c.file
	}
	return "default"
}

// envNames lists the variables read for key (global or "section.key"), in order of precedence.
func (c *Config) envNames(key string) []string {
	section, sub, nested := strings.Cut(key, ".")
	if !nested {
		return []string{envName("", key)}
	}
	names := []string{envName(section, sub)}
	return append(names, c.aliases[key]...)
}

// BackendSection assembles the config section of backend name from the config file and the
// environment, reading exactly the keys in opts (the backend's documented options): each from
// SDCTL_<BACKEND>_<KEY>, then its Option.Env aliases, then the config file. Keys in the file
// that opts does not know are passed on too, so the backend can reject them by name.
func (c *Config) BackendSection(name string, opts []registry.Option) (map[string]any, error) {
	if c.aliases == nil {
		c.aliases = map[string][]string{}
	}
	section := map[string]any{}
	for _, o := range opts {
		key := name + "." + o.Key
		c.aliases[key] = o.Env
		if err := c.v.BindEnv(append([]string{key}, c.envNames(key)...)...); err != nil {
			return nil, err
		}
		if c.v.IsSet(key) {
			section[o.Key] = c.v.Get(key)
		}
	}
	for k, val := range c.v.GetStringMap(name) {
		if _, known := section[k]; !known {
			section[k] = val
		}
	}
	return section, nil
}

// SectionError names the source of a bad backend option (a *registry.FieldError from the
// backend), so the user knows which flag, variable or file line to fix.
func (c *Config) SectionError(backend string, fe *registry.FieldError) error {
	key := backend + "." + fe.Field
	return &Error{Key: key, Source: c.Source(key), Reason: fe.Reason}
}

// Setting is one line of `sdctl config view`.
type Setting struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// Redacted replaces secret values in output.
const Redacted = "<redacted>"

// View lists the effective global settings and the selected backend's options (as returned by
// BackendSection), with their sources. Secret values are replaced by Redacted.
func (c *Config) View(backend string, opts []registry.Option, section map[string]any) []Setting {
	var out []Setting
	for _, g := range Globals {
		out = append(out, Setting{Key: g.Key, Value: c.v.Get(g.Key), Source: c.Source(g.Key)})
	}
	secret := map[string]bool{}
	documented := map[string]bool{}
	var keys []string
	for _, o := range opts {
		secret[o.Key] = o.Secret
		documented[o.Key] = true
		keys = append(keys, o.Key)
	}
	var extra []string
	for k := range section {
		if !documented[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range append(keys, extra...) {
		full := backend + "." + k
		val, set := section[k]
		s := Setting{Key: full, Value: val, Source: c.Source(full)}
		switch {
		case !set:
			s.Value, s.Source = defaultOf(opts, k), "default"
		case secret[k] || looksSecret(k):
			s.Value = Redacted
		default:
			s.Value = redactValue(val)
		}
		out = append(out, s)
	}
	return out
}

// redactValue removes URL passwords from a string or a list of strings.
func redactValue(v any) any {
	switch val := v.(type) {
	case string:
		return RedactURLs(val)
	case []string:
		out := make([]string, len(val))
		for i, s := range val {
			out[i] = RedactURLs(s)
		}
		return out
	case []any:
		out := make([]any, len(val))
		for i, s := range val {
			out[i] = redactValue(s)
		}
		return out
	}
	return v
}

func defaultOf(opts []registry.Option, key string) any {
	for _, o := range opts {
		if o.Key == key {
			return o.Default
		}
	}
	return nil
}

// looksSecret guards undocumented keys (a typo of "token" in a config file must not leak).
func looksSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"token", "password", "secret", "key", "auth"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Override sets key (global or "section.key") above every other source, for values a command
// takes from its arguments (the registry URI of `sdctl watch`). source names the argument in
// errors and in `config view`.
func (c *Config) Override(key string, value any, source string) {
	if c.overrides == nil {
		c.overrides = map[string]string{}
	}
	c.overrides[key] = source
	c.v.Set(key, value)
}
