package registry

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits that keep names usable in DNS, URLs and every backend's key space.
const (
	MaxLabelLen   = 63
	MaxNameLen    = 253
	MaxIDLen      = 256
	MaxTagLen     = 255
	MaxMetaKeyLen = 128
	MaxMetaValLen = 512
	MaxMetaPairs  = 64
	// MaxWeight is the largest weight: DNS SRV weights are 16-bit, and Consul refuses more.
	MaxWeight = 65535
)

// ValidateName checks a service name: dot-separated labels of 1-63 letters, digits, '-' or '_',
// not starting or ending with '-', 253 characters at most.
func ValidateName(name string) error {
	if name == "" {
		return Invalidf("name", "service name is empty")
	}
	if len(name) > MaxNameLen {
		return Invalidf("name", "service name %q is %d characters long (at most %d)", abbreviate(name), len(name), MaxNameLen)
	}
	for _, label := range strings.Split(name, ".") {
		if err := validateLabel(label); err != nil {
			return Invalidf("name", "service name %q: %s", abbreviate(name), err)
		}
	}
	return nil
}

func validateLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("empty label (leading, trailing or double dot)")
	case len(label) > MaxLabelLen:
		return fmt.Errorf("label %q is %d characters long (at most %d per DNS label)", abbreviate(label), len(label), MaxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with '-'", label)
	}
	for _, r := range label {
		if !(r < unicode.MaxASCII && (r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')) {
			return fmt.Errorf("character %q is not allowed (use letters, digits, '-', '_' and '.')", r)
		}
	}
	return nil
}

// ValidateID checks an instance ID: 1-256 printable UTF-8 characters without spaces or '/'.
func ValidateID(id string) error {
	if id == "" {
		return Invalidf("id", "instance ID is empty")
	}
	if len(id) > MaxIDLen {
		return Invalidf("id", "instance ID is %d characters long (at most %d)", len(id), MaxIDLen)
	}
	if id == "." || id == ".." {
		// Path segments of their own in every HTTP API: a registry cleans them away.
		return Invalidf("id", "instance ID %q is not allowed", id)
	}
	if err := validUTF8("id", "instance ID", id); err != nil {
		return err
	}
	for _, r := range id {
		if r == '/' || r == '?' || r == '#' || r == '%' || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return Invalidf("id", "instance ID %q: character %q is not allowed", abbreviate(id), r)
		}
	}
	return nil
}

// ValidateAddress checks that addr is an IP address or a DNS host name.
func ValidateAddress(addr string) error {
	if addr == "" {
		return Invalidf("address", "address is empty")
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		if zone := ip.Zone(); zone != "" {
			for _, r := range zone {
				if !(r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
					return Invalidf("address", "%q: IPv6 zone %q is not an interface name", abbreviate(addr), abbreviate(zone))
				}
			}
		}
		return nil
	}
	if strings.ContainsAny(addr, ":[]") {
		return Invalidf("address", "%q is not a valid IP address", abbreviate(addr))
	}
	// A name made only of digits and dots is a mistyped IPv4 address, not a host name.
	if strings.Trim(addr, "0123456789.") == "" {
		return Invalidf("address", "%q is not a valid IPv4 address", abbreviate(addr))
	}
	if len(addr) > MaxNameLen {
		return Invalidf("address", "host name is %d characters long (at most %d)", len(addr), MaxNameLen)
	}
	for _, label := range strings.Split(strings.TrimSuffix(addr, "."), ".") {
		if err := validateLabel(label); err != nil {
			return Invalidf("address", "host name %q: %s", abbreviate(addr), err)
		}
	}
	return nil
}

// ValidatePort checks a TCP/UDP port number.
func ValidatePort(port int) error {
	if port < 1 || port > 65535 {
		return Invalidf("port", "port %d is out of range (1-65535)", port)
	}
	return nil
}

// ParsePort parses a decimal port number.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil {
		return 0, Invalidf("port", "%q is not a port number", abbreviate(s))
	}
	return p, ValidatePort(p)
}

// ParseHostPort splits "host:port", "[v6]:port" or ":port" (empty host) and validates both parts.
func ParseHostPort(s string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, Invalidf("address", "%q is not HOST:PORT (IPv6 as [ADDR]:PORT)", abbreviate(s))
	}
	if port, err = ParsePort(p); err != nil {
		return "", 0, err
	}
	if h != "" {
		if err := ValidateAddress(h); err != nil {
			return "", 0, err
		}
		if bracketed := strings.HasPrefix(s, "["); bracketed != strings.Contains(h, ":") {
			return "", 0, Invalidf("address", "%q: only IPv6 addresses go in brackets, and they must", abbreviate(s))
		}
	}
	return h, port, nil
}

// HostPort formats an address and port, bracketing IPv6 addresses: "[::1]:80".
func HostPort(addr string, port int) string {
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

// DefaultID derives an instance ID from its name, address and port: NAME-ADDRESS-PORT. It is a
// valid ID whenever name, address and port are valid: an IPv6 zone's '%' becomes '-' ("fe80::1%eth0"
// gives "web-fe80::1-eth0-80"), and an ID that would pass MaxIDLen keeps its start and ends with a
// hash of the whole, so distinct instances keep distinct IDs.
func DefaultID(name, addr string, port int) string {
	id := fmt.Sprintf("%s-%s-%d", name, strings.ReplaceAll(addr, "%", "-"), port)
	if len(id) <= MaxIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	suffix := "-" + hex.EncodeToString(sum[:8])
	return id[:MaxIDLen-len(suffix)] + suffix
}

// ValidateMeta checks metadata keys and values: the limits Consul applies, and values in UTF-8.
func ValidateMeta(meta map[string]string) error {
	if len(meta) > MaxMetaPairs {
		return Invalidf("meta", "%d metadata pairs (at most %d)", len(meta), MaxMetaPairs)
	}
	for k, v := range meta {
		if err := validateWord("meta", "metadata key", k, MaxMetaKeyLen, metaKeyChar, " (use letters, digits, '-' and '_')"); err != nil {
			return err
		}
		if err := validUTF8("meta", fmt.Sprintf("metadata value of %q", k), v); err != nil {
			return err
		}
		if len(v) > MaxMetaValLen {
			return Invalidf("meta", "metadata value of %q is longer than %d characters", k, MaxMetaValLen)
		}
	}
	return nil
}

// ParseMeta parses "key=value" (the value may be empty or contain '=').
func ParseMeta(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", Invalidf("meta", "%q is not KEY=VALUE", abbreviate(s))
	}
	if err := ValidateMeta(map[string]string{k: v}); err != nil {
		return "", "", err
	}
	return k, v, nil
}

// ValidateTags checks that tags are non-empty printable UTF-8 strings.
func ValidateTags(tags []string) error {
	for _, t := range tags {
		if err := validateWord("tags", "tag", t, MaxTagLen, tagChar, ""); err != nil {
			return err
		}
	}
	return nil
}

func metaKeyChar(r rune) bool {
	return r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func tagChar(r rune) bool { return unicode.IsPrint(r) && !unicode.IsSpace(r) }

// validateWord checks one tag or metadata key (what, in field): not empty, UTF-8, at most maxLen
// bytes, and made of characters that pass allowed; hint, when set, says which those are.
func validateWord(field, what, s string, maxLen int, allowed func(rune) bool, hint string) error {
	if s == "" {
		return Invalidf(field, "%s is empty", what)
	}
	if err := validUTF8(field, what, s); err != nil {
		return err
	}
	if len(s) > maxLen {
		return Invalidf(field, "%s %q is longer than %d characters", what, abbreviate(s), maxLen)
	}
	for _, r := range s {
		if !allowed(r) {
			return Invalidf(field, "%s %q: character %q is not allowed%s", what, abbreviate(s), r, hint)
		}
	}
	return nil
}

// ValidateWeight checks a weight: 0 (the default of 1, or drained with Instance.Drain) up to
// MaxWeight.
func ValidateWeight(w int) error {
	if w < 0 || w > MaxWeight {
		return Invalidf("weight", "weight %d is out of range (1-%d, or 0 to drain)", w, MaxWeight)
	}
	return nil
}

// ValidateCheck checks a health check's fields; its target, method and headers are UTF-8.
func ValidateCheck(c Check) error {
	switch c.Kind {
	case CheckHTTP, CheckTCP, CheckGRPC, CheckScript:
	case CheckTTL:
		if c.Target != "" || c.Interval != 0 || c.Timeout != 0 || c.Method != "" || len(c.Header) > 0 || c.TLSSkipVerify {
			return Invalidf("check", "a ttl check takes only an initial status and a deregister-after: it has no target, interval or timeout (the TTL is the instance's)")
		}
	default:
		return Invalidf("check", "unknown check kind %q (http, tcp, grpc, script or ttl)", c.Kind)
	}
	if c.Target == "" && c.Kind != CheckTTL {
		return Invalidf("check", "%s check has no target", c.Kind)
	}
	if err := validUTF8("check", fmt.Sprintf("%s check target", c.Kind), c.Target); err != nil {
		return err
	}
	if err := validUTF8("check", fmt.Sprintf("%s check method", c.Kind), c.Method); err != nil {
		return err
	}
	for name, values := range c.Header {
		if err := validUTF8("check", fmt.Sprintf("%s check header name", c.Kind), name); err != nil {
			return err
		}
		for _, v := range values {
			if err := validUTF8("check", fmt.Sprintf("%s check header %q", c.Kind, abbreviate(strings.ToValidUTF8(name, "?"))), v); err != nil {
				return err
			}
		}
	}
	if c.Interval < 0 || c.Timeout < 0 || c.DeregisterAfter < 0 {
		return Invalidf("check", "%s check has a negative duration", c.Kind)
	}
	switch c.InitialStatus {
	case "", HealthPassing, HealthWarning, HealthCritical:
	default:
		return Invalidf("check", "initial status %q is not passing, warning or critical", c.InitialStatus)
	}
	return nil
}

// validUTF8 rejects a string (what, in field) that is not UTF-8: it could not cross the plugin
// protocol (protobuf strings must be UTF-8) nor be stored faithfully in JSON. Every validator of
// a free-form string calls it, so that whoever builds an instance (the CLI, a batch file, the
// watcher's container labels) gets the same rule and the same message.
func validUTF8(field, what, s string) error {
	if !utf8.ValidString(s) {
		return Invalidf(field, "%s is not valid UTF-8: %q", what, abbreviate(strings.ToValidUTF8(s, "?")))
	}
	return nil
}

// Validate checks every field a caller supplies to Register.
func (inst Instance) Validate() error {
	// The first field that fails is reported, in this order.
	if err := cmp.Or(ValidateName(inst.Name), ValidateID(inst.ID), ValidateAddress(inst.Address), ValidatePort(inst.Port),
		ValidateTags(inst.Tags), ValidateMeta(inst.Meta), ValidateWeight(inst.Weight)); err != nil {
		return err
	}
	if inst.Drain && inst.Weight != 0 {
		return Invalidf("weight", "a drained instance has weight 0, not %d", inst.Weight)
	}
	if inst.TTL < 0 {
		return Invalidf("ttl", "TTL %s is negative", inst.TTL)
	}
	ttlChecks := 0
	for _, c := range inst.Checks {
		if err := ValidateCheck(c); err != nil {
			return err
		}
		if c.Kind == CheckTTL {
			ttlChecks++
		}
	}
	switch {
	case ttlChecks > 0 && inst.TTL <= 0:
		return Invalidf("check", "a ttl check (initial status, deregister-after of the TTL) needs a TTL (--ttl)")
	case ttlChecks > 1:
		return Invalidf("check", "an instance has one TTL, so at most one ttl check")
	}
	return ValidateHealth(inst.Health)
}

// ValidateHealth checks a declared health: empty (nothing declared) or one of the four states.
func ValidateHealth(h Health) error {
	switch h {
	case "", HealthPassing, HealthWarning, HealthCritical, HealthMaintenance:
		return nil
	}
	return Invalidf("health", "health %q is not passing, warning, critical or maintenance", abbreviate(strings.ToValidUTF8(string(h), "?")))
}

// abbreviate keeps error messages on one line for hostile input.
func abbreviate(s string) string {
	const limit = 80
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
