package registry_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"service-web", true},
		{"api_v2", true},
		{"web.eu-1", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{"has space", false},
		{"bang!", false},
		{strings.Repeat("a", 64), false},
		{"a." + strings.Repeat("b", 64), false},
		{"-web", false},
		{"web-", false},
		{"web..x", false},
		{".web", false},
		{"wéb", false},
		{strings.Repeat("a.", 127) + "a", false}, // 255 characters
	} {
		err := registry.ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%t", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("ValidateName(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	for _, tc := range []struct {
		in      string
		host    string
		port    int
		wantErr string
	}{
		{in: "127.0.0.1:3000", host: "127.0.0.1", port: 3000},
		{in: ":3000", host: "", port: 3000},
		{in: "[::1]:80", host: "::1", port: 80},
		{in: "[fe80::1%eth0]:80", host: "fe80::1%eth0", port: 80},
		{in: "db.internal:5432", host: "db.internal", port: 5432},
		{in: "10.0.0.1:0", wantErr: "out of range"},
		{in: "10.0.0.1:65536", wantErr: "out of range"},
		{in: "10.0.0.1:abc", wantErr: "not a port number"},
		{in: "999.1.1.1:80", wantErr: "not a valid IPv4 address"},
		{in: ":::", wantErr: "not HOST:PORT"},
		{in: "10.0.0.1", wantErr: "not HOST:PORT"},
		{in: "::1:80", wantErr: "not HOST:PORT"},
		{in: "[web]:80", wantErr: "brackets"},
		{in: "[1.2.3.4]:80", wantErr: "brackets"},
		{in: "[fe80::1%a/b]:80", wantErr: "zone"},
		{in: "bad host:80", wantErr: "not allowed"},
	} {
		host, port, err := registry.ParseHostPort(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("ParseHostPort(%q) = %q, %d, %v; want an ErrInvalid containing %q", tc.in, host, port, err, tc.wantErr)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("ParseHostPort(%q) = %q, %d, %v; want %q, %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

func TestHostPortBracketsIPv6(t *testing.T) {
	if got := registry.HostPort("fd00::5", 3000); got != "[fd00::5]:3000" {
		t.Errorf("HostPort = %q", got)
	}
	if got := registry.HostPort("10.0.0.5", 3000); got != "10.0.0.5:3000" {
		t.Errorf("HostPort = %q", got)
	}
}

func TestParseMeta(t *testing.T) {
	for _, tc := range []struct {
		in, k, v string
		ok       bool
	}{
		{"version=2.1", "version", "2.1", true},
		{"expr=a=b", "expr", "a=b", true},
		{"empty=", "empty", "", true},
		{"novalue", "", "", false},
		{"=v", "", "", false},
		{"bad key=v", "", "", false},
		{strings.Repeat("k", 129) + "=v", "", "", false},
		{"k=" + strings.Repeat("v", 513), "", "", false},
	} {
		k, v, err := registry.ParseMeta(tc.in)
		if (err == nil) != tc.ok || k != tc.k || v != tc.v {
			t.Errorf("ParseMeta(%q) = %q, %q, %v; want %q, %q ok=%t", tc.in, k, v, err, tc.k, tc.v, tc.ok)
		}
	}
}

func TestInstanceValidate(t *testing.T) {
	good := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}
	if err := good.Validate(); err != nil {
		t.Fatalf("good instance: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*registry.Instance)
		field string
	}{
		{"empty id", func(i *registry.Instance) { i.ID = "" }, "id"},
		{"id with slash", func(i *registry.Instance) { i.ID = "a/b" }, "id"},
		{"id with space", func(i *registry.Instance) { i.ID = "a b" }, "id"},
		{"bad name", func(i *registry.Instance) { i.Name = "a b" }, "name"},
		{"no address", func(i *registry.Instance) { i.Address = "" }, "address"},
		{"port 0", func(i *registry.Instance) { i.Port = 0 }, "port"},
		{"empty tag", func(i *registry.Instance) { i.Tags = []string{""} }, "tags"},
		{"negative ttl", func(i *registry.Instance) { i.TTL = -1 }, "ttl"},
		{"negative weight", func(i *registry.Instance) { i.Weight = -1 }, "weight"},
		{"check without target", func(i *registry.Instance) { i.Checks = []registry.Check{{Kind: registry.CheckHTTP}} }, "check"},
		{"unknown check", func(i *registry.Instance) { i.Checks = []registry.Check{{Kind: "ping", Target: "x"}} }, "check"},
		{"id not UTF-8", func(i *registry.Instance) { i.ID = "web-\xff" }, "id"},
		{"tag not UTF-8", func(i *registry.Instance) { i.Tags = []string{"a\xc3"} }, "tags"},
		{"meta value not UTF-8", func(i *registry.Instance) { i.Meta = map[string]string{"k": "\xff"} }, "meta"},
		{"check target not UTF-8", func(i *registry.Instance) {
			i.Checks = []registry.Check{{Kind: registry.CheckHTTP, Target: "http://10.0.0.1/\xff"}}
		}, "check"},
		{"unknown health", func(i *registry.Instance) { i.Health = "sick" }, "health"},
		{"health in capitals", func(i *registry.Instance) { i.Health = "Passing" }, "health"},
		{"health not UTF-8", func(i *registry.Instance) { i.Health = "\xff" }, "health"},
	} {
		inst := good
		tc.edit(&inst)
		var fe *registry.FieldError
		if err := inst.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: Validate() = %v, want a FieldError for %q", tc.name, err, tc.field)
		}
	}
}

// Each validator of a free-form string refuses invalid UTF-8 itself, naming what it checks and
// showing the value with '?' for the bad bytes, so that callers need no check of their own.
func TestValidatorsRefuseInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		field string
		want  string
	}{
		{"id", registry.ValidateID("web-\xff"), "id", `instance ID is not valid UTF-8: "web-?"`},
		{"tag", registry.ValidateTags([]string{"ok", "a\xc3"}), "tags", `tag is not valid UTF-8: "a?"`},
		{"meta key", registry.ValidateMeta(map[string]string{"k\xff": "v"}), "meta", `metadata key is not valid UTF-8: "k?"`},
		{"meta value", registry.ValidateMeta(map[string]string{"k": "v\xff"}), "meta", `metadata value of "k" is not valid UTF-8: "v?"`},
		{"check target", registry.ValidateCheck(registry.Check{Kind: registry.CheckScript, Target: "check \xff"}), "check", `script check target is not valid UTF-8: "check ?"`},
		{"check method", registry.ValidateCheck(registry.Check{Kind: registry.CheckHTTP, Target: "http://h/", Method: "G\xffT"}), "check", `http check method is not valid UTF-8: "G?T"`},
		{"check header", registry.ValidateCheck(registry.Check{Kind: registry.CheckHTTP, Target: "http://h/", Header: map[string][]string{"X-A": {"\xff"}}}), "check", `http check header "X-A" is not valid UTF-8: "?"`},
		{"check header name", registry.ValidateCheck(registry.Check{Kind: registry.CheckHTTP, Target: "http://h/", Header: map[string][]string{"X-\xff": {"v"}}}), "check", `http check header name is not valid UTF-8: "X-?"`},
	} {
		var fe *registry.FieldError
		if !errors.As(tc.err, &fe) || fe.Field != tc.field || fe.Reason != tc.want {
			t.Errorf("%s: %v, want a FieldError for %q: %s", tc.name, tc.err, tc.field, tc.want)
		}
	}
	for _, err := range []error{registry.ValidateID("web-é"), registry.ValidateTags([]string{"été"}),
		registry.ValidateMeta(map[string]string{"k": "été"}), registry.ValidateCheck(registry.Check{Kind: registry.CheckScript, Target: "echo été"})} {
		if err != nil {
			t.Errorf("valid UTF-8 refused: %v", err)
		}
	}
}

func TestInstanceValidateDeclaredHealth(t *testing.T) {
	for _, h := range []registry.Health{"", registry.HealthPassing, registry.HealthWarning, registry.HealthCritical, registry.HealthMaintenance} {
		inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Health: h}
		if err := inst.Validate(); err != nil {
			t.Errorf("health %q: Validate() = %v", h, err)
		}
	}
	err := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Health: "sick"}.Validate()
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), `"sick"`) {
		t.Errorf("Validate() = %v, want an ErrInvalid naming the value", err)
	}
}

func TestHealthWorse(t *testing.T) {
	const (
		p = registry.HealthPassing
		w = registry.HealthWarning
		c = registry.HealthCritical
		m = registry.HealthMaintenance
	)
	for _, tc := range []struct{ a, b, want registry.Health }{
		{"", "", p},
		{"", p, p},
		{"", w, w},
		{p, w, w},
		{c, w, c},
		{w, c, c},
		{m, c, m},
		{c, m, m},
		{p, m, m},
		{"sick", w, "sick"},
		{"sick", m, m},
	} {
		if got := tc.a.Worse(tc.b); got != tc.want {
			t.Errorf("%q.Worse(%q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestErrorfMatchesItsKind(t *testing.T) {
	err := registry.Errorf(registry.ErrNotFound, "resolve %s: no healthy instance", "web")
	if !errors.Is(err, registry.ErrNotFound) || err.Error() != "resolve web: no healthy instance" {
		t.Fatalf("got %q, Is(ErrNotFound)=%t", err, errors.Is(err, registry.ErrNotFound))
	}
}

func TestSummarize(t *testing.T) {
	got := registry.Summarize([]registry.Instance{
		{Name: "web", Tags: []string{"v2", "a"}, Health: registry.HealthPassing},
		{Name: "api", Health: registry.HealthCritical},
		{Name: "web", Tags: []string{"a"}, Health: registry.HealthWarning},
	})
	want := []registry.Service{{Name: "api", Instances: 1}, {Name: "web", Instances: 2, Passing: 1, Tags: []string{"a", "v2"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
}
