package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sdctl/sdctl/internal/suggest"
)

// CheckFileKeys refuses a config file key that sdctl does not know, naming the key, the file
// and the closest known key: a typo must not be silently ignored. sections maps each backend
// that may have a section to the keys of its options; a nil list accepts any key (an external
// plugin's options are only known once it runs, and it refuses unknown keys of its own section
// then).
func (c *Config) CheckFileKeys(sections map[string][]string) error {
	if c.file == "" {
		return nil
	}
	var globals []string
	for _, g := range Globals {
		globals = append(globals, g.Key)
	}
	topLevel := append([]string(nil), globals...)
	for name := range sections {
		topLevel = append(topLevel, name)
	}
	sort.Strings(topLevel)
	for _, key := range c.fileKeys {
		section, sub, nested := strings.Cut(key, ".")
		known, isSection := sections[section]
		switch {
		case !nested && contains(globals, key):
		case !nested && isSection:
			return c.fileError(key, "%s is a backend section: write its options under it (%s: {KEY: VALUE})", key, key)
		case !nested:
			return c.fileError(key, "unknown key%s (known: %s)", hint(key, topLevel), strings.Join(topLevel, ", "))
		case contains(globals, section):
			return c.fileError(key, "%s is a value, not a section", section)
		case !isSection:
			return c.fileError(key, "unknown section %q%s (sections are backends: %s)", section, hint(section, topLevel), strings.Join(slices.Sorted(maps.Keys(sections)), ", "))
		case known != nil && !contains(known, sub):
			return c.fileError(key, "unknown %s option%s (known: %s)", section, hint(sub, known), strings.Join(known, ", "))
		}
	}
	return nil
}

func (c *Config) fileError(key, format string, args ...any) error {
	return &Error{Key: key, Source: "config file " + c.file, Reason: fmt.Sprintf(format, args...)}
}

func hint(word string, known []string) string {
	if s := suggest.Closest(word, known); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// urlPassword matches the password of a URL with user information: scheme://user:PASSWORD@.
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@`)

// RedactURLs replaces the password of every URL in s with Redacted, as Consul and etcd addresses
// may carry one: "http://u:pw@host" becomes "http://u:<redacted>@host".
func RedactURLs(s string) string {
	return urlPassword.ReplaceAllString(s, "${1}"+Redacted+"@")
}
