package resolve

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name     string
		arg      string
		wantName string
		wantURL  bool
		wantErr  string
	}{
		{name: "bare name", arg: "web", wantName: "web"},
		{name: "dotted name", arg: "api.v2", wantName: "api.v2"},
		{name: "URL", arg: "http://service-web/api/x", wantName: "service-web", wantURL: true},
		{name: "URL with userinfo", arg: "https://u:p@web/", wantName: "web", wantURL: true},
		{name: "URL host in capitals", arg: "HTTP://WEB/x", wantName: "web", wantURL: true},
		{name: "URL with a port", arg: "https://u:p@web:8443/", wantErr: "the port comes from the instance"},
		{name: "URL with an empty port", arg: "http://web:/x", wantErr: "the port comes from the instance"},
		{name: "URL without path", arg: "grpc://payments", wantName: "payments", wantURL: true},
		{name: "invalid bare name", arg: "web server", wantErr: `name: service name "web server": character ' ' is not allowed`},
		{name: "empty", arg: "", wantErr: "service name is empty"},
		{name: "URL that does not parse", arg: "http://web:port/", wantErr: `url: "http://web:port/" is not a valid URL: invalid port ":port" after host`},
		{name: "URL without host", arg: "http:///x", wantErr: `url: "http:///x" has no host`},
		{name: "URL with only userinfo", arg: "http://user@/x", wantErr: `has no host`},
		{name: "no scheme", arg: "://web", wantErr: "is not a valid URL"},
		{name: "not a URL scheme", arg: "web?next=http://x", wantErr: "has no host"},
		{name: "IPv6 host", arg: "http://[::1]:80/", wantErr: "the host must be a service name, not an IP address"},
		{name: "host not a service name", arg: "http://we~b/", wantErr: `url: "http://we~b/": the host must be a service name: service name "we~b": character '~' is not allowed`},
		{name: "IPv4 host is not a name", arg: "http://10.0.0.1/", wantName: "10.0.0.1", wantURL: true},
		{name: "control character", arg: "http://web/\x7f", wantErr: "invalid control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.arg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget(%q) error = %v, want it to contain %q", tt.arg, err, tt.wantErr)
				}
				if !errors.Is(err, registry.ErrInvalid) {
					t.Errorf("error %v does not wrap registry.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tt.arg, err)
			}
			if got.Name != tt.wantName || (got.URL != nil) != tt.wantURL {
				t.Errorf("ParseTarget(%q) = {Name: %q, URL: %v}, want name %q, URL %v", tt.arg, got.Name, got.URL, tt.wantName, tt.wantURL)
			}
		})
	}
}

func TestRewriteURL(t *testing.T) {
	v4 := registry.Instance{Address: "172.22.0.6", Port: 3000}
	v6 := registry.Instance{Address: "fd00::5", Port: 3000}
	tests := []struct {
		name    string
		raw     string
		inst    registry.Instance
		want    string
		wantErr string
	}{
		{name: "design example", raw: "http://service-web/api/x", inst: v4, want: "http://172.22.0.6:3000/api/x"},
		{name: "IPv6 is bracketed", raw: "http://web/x", inst: v6, want: "http://[fd00::5]:3000/x"},
		{name: "IPv6 zone is escaped", raw: "http://web/x", inst: registry.Instance{Address: "fe80::1%eth0", Port: 80}, want: "http://[fe80::1%25eth0]:80/x"},
		{name: "IPv6 zone that a URL cannot hold", raw: "http://web/x", inst: registry.Instance{Address: "fe80::1%a#b", Port: 80}, wantErr: "is not an interface name"},
		{name: "IPv6 zone with a space", raw: "http://web/x", inst: registry.Instance{Address: "fe80::1%Local Area Connection", Port: 80}, wantErr: "is not an interface name"},
		{name: "IPv6 zone", raw: "http://web/x", inst: registry.Instance{Address: "fe80::1%eth0", Port: 80}, want: "http://[fe80::1%25eth0]:80/x"},
		{name: "port in the URL refused", raw: "http://web:8080/x", inst: v4, wantErr: "the port comes from the instance"},
		{name: "host in capitals", raw: "HTTP://WEB/x", inst: v4, want: "HTTP://172.22.0.6:3000/x"},
		{name: "no path", raw: "grpc://web", inst: v4, want: "grpc://172.22.0.6:3000"},
		{name: "query right after host", raw: "http://web?a=1", inst: v4, want: "http://172.22.0.6:3000?a=1"},
		{name: "fragment right after host", raw: "http://web#top", inst: v4, want: "http://172.22.0.6:3000#top"},
		{
			name: "encoded path, query and fragment kept byte for byte",
			raw:  "http://web/a%2Fb/c%20d/%7e?q=a%20b+c&x=%2F&&y=é#frag%20ment/?",
			inst: v4,
			want: "http://172.22.0.6:3000/a%2Fb/c%20d/%7e?q=a%20b+c&x=%2F&&y=é#frag%20ment/?",
		},
		{name: "userinfo kept", raw: "https://us%40er:p%3Ass@web/x", inst: v6, want: "https://us%40er:p%3Ass@[fd00::5]:3000/x"},
		{name: "scheme case kept", raw: "HTTP://web/X", inst: v4, want: "HTTP://172.22.0.6:3000/X"},
		{name: "host name address", raw: "redis://cache/0", inst: registry.Instance{Address: "node-3.internal", Port: 6379}, want: "redis://node-3.internal:6379/0"},
		{name: "bare name is not a URL", raw: "web", inst: v4, wantErr: `url: "web" is not a URL`},
		{name: "bracketed name", raw: "http://[web]/", inst: v4, wantErr: "is not a valid URL"},
		{name: "instance without address", raw: "http://web/", inst: registry.Instance{Port: 80}, wantErr: "address is empty"},
		{name: "instance without port", raw: "http://web/", inst: registry.Instance{Address: "10.0.0.1"}, wantErr: "port 0 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RewriteURL(tt.raw, tt.inst)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RewriteURL(%q) = %q, %v; want error containing %q", tt.raw, got, err, tt.wantErr)
				}
				if !errors.Is(err, registry.ErrInvalid) {
					t.Errorf("error %v does not wrap registry.ErrInvalid", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RewriteURL(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
			if _, err := url.Parse(got); err != nil {
				t.Errorf("rewritten URL does not parse: %v", err)
			}
		})
	}
}

func TestTargetRewrite(t *testing.T) {
	inst := registry.Instance{Address: "fd00::5", Port: 3000}
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{name: "bare name prints host:port", target: mustTarget(t, "web"), want: "[fd00::5]:3000"},
		{name: "URL", target: mustTarget(t, "http://web/x?y#z"), want: "http://[fd00::5]:3000/x?y#z"},
		{name: "built by hand", target: Target{Name: "web", URL: &url.URL{Scheme: "http", Host: "web", Path: "/a b"}}, want: "http://[fd00::5]:3000/a%20b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.target.Rewrite(inst)
			if err != nil || got != tt.want {
				t.Fatalf("Rewrite = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func mustTarget(t *testing.T, arg string) Target {
	t.Helper()
	target, err := ParseTarget(arg)
	if err != nil {
		t.Fatal(err)
	}
	return target
}
