package etcd

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

// decode is New without the connection: the config section as the backend sees it.
func decode(section map[string]any) (Options, error) {
	var opts Options
	if err := registry.DecodeOptions(section, &opts); err != nil {
		return opts, err
	}
	return opts.resolve()
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section map[string]any
		check   func(t *testing.T, o Options)
	}{
		{"Defaults", nil, func(t *testing.T, o Options) {
			if !slices.Equal(o.Endpoints, []string{DefaultEndpoint}) || o.Prefix != DefaultPrefix || o.DialTimeout != DefaultDialTimeout {
				t.Errorf("defaults = %+v", o)
			}
		}},
		{"EndpointsFromEnvironment", map[string]any{"endpoints": "10.0.0.1:2379, https://10.0.0.2:2379,"}, func(t *testing.T, o Options) {
			if !slices.Equal(o.Endpoints, []string{"10.0.0.1:2379", "https://10.0.0.2:2379"}) {
				t.Errorf("endpoints = %q", o.Endpoints)
			}
		}},
		{"EndpointsFromFile", map[string]any{"endpoints": []any{"http://a.example:2379", "[::1]:2379"}}, func(t *testing.T, o Options) {
			if len(o.Endpoints) != 2 {
				t.Errorf("endpoints = %q", o.Endpoints)
			}
		}},
		{"UserColonPassword", map[string]any{"username": "alice:s3cret"}, func(t *testing.T, o Options) {
			if o.Username != "alice" || o.Password != "s3cret" {
				t.Errorf("user %q password %q", o.Username, o.Password)
			}
		}},
		{"UserAndPassword", map[string]any{"username": "alice", "password": "s3cret"}, func(t *testing.T, o Options) {
			if o.Username != "alice" || o.Password != "s3cret" {
				t.Errorf("user %q password %q", o.Username, o.Password)
			}
		}},
		{"DialTimeoutString", map[string]any{"dial-timeout": "250ms"}, func(t *testing.T, o Options) {
			if o.DialTimeout != 250*time.Millisecond {
				t.Errorf("dial timeout %v", o.DialTimeout)
			}
		}},
		{"PrefixTrailingSlash", map[string]any{"prefix": "/svc/"}, func(t *testing.T, o Options) {
			if o.Prefix != "/svc" {
				t.Errorf("prefix %q", o.Prefix)
			}
		}},
		{"PrefixWithoutSlash", map[string]any{"prefix": "services"}, func(t *testing.T, o Options) {
			// etcd:///services/web then names the keys services/web/...
			if o.Prefix != "services" {
				t.Errorf("prefix %q", o.Prefix)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := decode(tc.section)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section map[string]any
		field   string
	}{
		{"UnknownKey", map[string]any{"endpoint": "x:1"}, "endpoint"},
		{"EndpointWithoutPort", map[string]any{"endpoints": "10.0.0.1"}, "endpoints"},
		{"EndpointScheme", map[string]any{"endpoints": "ftp://10.0.0.1:21"}, "endpoints"},
		{"EndpointPath", map[string]any{"endpoints": "http://10.0.0.1:2379/v3"}, "endpoints"},
		{"PasswordWithoutUser", map[string]any{"password": "s3cret"}, "password"},
		{"UserWithoutPassword", map[string]any{"username": "alice"}, "password"},
		{"TwoPasswords", map[string]any{"username": "alice:s3cret", "password": "other"}, "username"},
		{"NegativeDialTimeout", map[string]any{"dial-timeout": "-1s"}, "dial-timeout"},
		{"BadDialTimeout", map[string]any{"dial-timeout": "soon"}, "dial-timeout"},
		{"RootPrefix", map[string]any{"prefix": "/"}, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.section)
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v, want a FieldError for %q", err, tc.field)
			}
			for _, secret := range []string{"s3cret", "other"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q carries a password", err)
				}
			}
		})
	}
}

// TestOptionSchema keeps the documented keys and the decoded struct in step, and the etcdctl
// variables and secrets where the docs promise them.
func TestOptionSchema(t *testing.T) {
	var tags []string
	typ := reflect.TypeOf(Options{})
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("mapstructure"); tag != "-" {
			tags = append(tags, tag)
		}
	}
	schema := map[string]registry.Option{}
	var keys []string
	for _, o := range OptionSchema() {
		schema[o.Key] = o
		keys = append(keys, o.Key)
	}
	slices.Sort(tags)
	slices.Sort(keys)
	if !slices.Equal(tags, keys) {
		t.Fatalf("schema keys %q, struct keys %q", keys, tags)
	}
	for key, env := range map[string]string{
		"endpoints": "ETCDCTL_ENDPOINTS", "username": "ETCDCTL_USER", "password": "ETCDCTL_PASSWORD",
		"ca-file": "ETCDCTL_CACERT", "cert-file": "ETCDCTL_CERT", "key-file": "ETCDCTL_KEY",
		"dial-timeout": "ETCDCTL_DIAL_TIMEOUT",
	} {
		if !slices.Contains(schema[key].Env, env) {
			t.Errorf("option %s does not read %s", key, env)
		}
	}
	if !schema["password"].Secret || !schema["username"].Secret {
		t.Error("password and username (which may hold USER:PASSWORD) must be secret")
	}
	if !schema["endpoints"].List {
		t.Error("endpoints must be a list")
	}
}

func TestLeaseSeconds(t *testing.T) {
	for ttl, want := range map[time.Duration]int64{
		time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10, 10*time.Second + 1: 11,
	} {
		if got := leaseSeconds(ttl); got != want {
			t.Errorf("leaseSeconds(%v) = %d, want %d", ttl, got, want)
		}
	}
}
