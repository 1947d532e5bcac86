package resolve

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/sdctl/sdctl/registry"
)

// Target is the argument of `sdctl resolve`: a service name, or a URL whose host is one.
type Target struct {
	// Name is the service to resolve.
	Name string
	// URL is the parsed URL, or nil when the argument was a bare name.
	URL *url.URL

	// raw is the argument as given, so Rewrite can keep every other byte of it.
	raw string
}

// ParseTarget parses the argument of `sdctl resolve`: a service NAME, or a URL
// scheme://NAME[/path][?query][#fragment] whose host is the service name. Name is the host in
// lower case, as host names are case-insensitive (the resolve command also matches a service
// whose name has capitals). A port in the URL is an error: the instance's port replaces it. Anything containing "://" is taken for a URL. Errors wrap
// registry.ErrInvalid.
func ParseTarget(arg string) (Target, error) {
	if !strings.Contains(arg, "://") {
		if err := registry.ValidateName(arg); err != nil {
			return Target{}, err
		}
		return Target{Name: arg}, nil
	}
	u, err := url.Parse(arg)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Target{}, registry.Invalidf("url", "%q is not a valid URL: %v", abbreviate(arg), err)
	}
	start, end, ok := hostSpan(arg, u)
	if !ok || u.Host == "" || u.Opaque != "" {
		return Target{}, registry.Invalidf("url", "%q has no host: write it as SCHEME://SERVICE[/PATH]", abbreviate(arg))
	}
	if strings.HasPrefix(arg[start:end], "[") {
		return Target{}, registry.Invalidf("url", "%q: the host must be a service name, not an IP address", abbreviate(arg))
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		return Target{}, registry.Invalidf("url", "%q: the port comes from the instance; write the URL without one (SCHEME://%s/...)", abbreviate(arg), u.Hostname())
	}
	// Host names are case-insensitive: HTTP://WEB/ names the service web.
	name := strings.ToLower(u.Hostname())
	if err := registry.ValidateName(name); err != nil {
		reason := err.Error()
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			reason = fe.Reason
		}
		return Target{}, registry.Invalidf("url", "%q: the host must be a service name: %s", abbreviate(arg), reason)
	}
	return Target{Name: name, URL: u, raw: arg}, nil
}

// hostSpan finds host[:port] in raw, the URL u was parsed from: after "scheme://" and any
// "userinfo@", up to the first '/', '?' or '#', as url.Parse splits it.
func hostSpan(raw string, u *url.URL) (start, end int, ok bool) {
	i := strings.Index(raw, "://")
	if u.Scheme == "" || i != len(u.Scheme) {
		return 0, 0, false
	}
	start = i + len("://")
	end = len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		start += at + 1
	}
	return start, end, true
}

// Rewrite returns what resolve prints for inst: its HOST:PORT for a bare name, or the URL with
// its host and port replaced by the instance's address and port (IPv6 in brackets). Everything
// else in the URL (scheme, user info, path, query, fragment) is kept exactly as it was given,
// without decoding or re-encoding. The instance's address and port must be valid.
func (t Target) Rewrite(inst registry.Instance) (string, error) {
	if err := registry.ValidateAddress(inst.Address); err != nil {
		return "", err
	}
	if err := registry.ValidatePort(inst.Port); err != nil {
		return "", err
	}
	if t.URL == nil {
		return registry.HostPort(inst.Address, inst.Port), nil
	}
	hostport, err := urlHostPort(inst.Address, inst.Port)
	if err != nil {
		return "", err
	}
	if t.raw != "" {
		if start, end, ok := hostSpan(t.raw, t.URL); ok {
			return t.raw[:start] + hostport + t.raw[end:], nil
		}
	}
	// A Target built by hand has no raw text to edit: let net/url format it.
	u := *t.URL
	u.Host = hostport
	return u.String(), nil
}

// RewriteURL replaces the service name (and any port) in the URL raw with the address and port
// of inst: RewriteURL("http://web/api?q=1", inst) is "http://172.22.0.6:3000/api?q=1". raw must
// be a URL as ParseTarget accepts it.
func RewriteURL(raw string, inst registry.Instance) (string, error) {
	t, err := ParseTarget(raw)
	if err != nil {
		return "", err
	}
	if t.URL == nil {
		return "", registry.Invalidf("url", "%q is not a URL (SCHEME://SERVICE[/PATH])", abbreviate(raw))
	}
	return t.Rewrite(inst)
}

// urlHostPort is registry.HostPort for use in a URL. An IPv6 zone is written after "%25", as
// RFC 6874 requires and net/url expects; a zone that net/url cannot read back (one containing
// '#', '/' or '@', say) is an error rather than a broken URL.
func urlHostPort(addr string, port int) (string, error) {
	ip, zone, ok := strings.Cut(addr, "%")
	if !ok {
		return registry.HostPort(addr, port), nil
	}
	zone = strings.NewReplacer("%", "%25", " ", "%20").Replace(zone)
	hostport := "[" + ip + "%25" + zone + "]:" + strconv.Itoa(port)
	if u, err := url.Parse("http://" + hostport); err != nil || u.Hostname() != addr {
		return "", registry.Invalidf("address", "%q: the IPv6 zone cannot be written in a URL", abbreviate(addr))
	}
	return hostport, nil
}

// abbreviate keeps error messages short for long arguments; %q takes care of control characters.
func abbreviate(s string) string {
	const limit = 100
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
