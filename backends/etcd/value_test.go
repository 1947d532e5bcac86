package etcd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/naming/endpoints"

	"github.com/sdctl/sdctl/internal/testutil"
	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

func TestValueRoundTrip(t *testing.T) {
	inst := registry.Instance{
		ID: "web-1", Name: "web", Address: "fd00::1", Port: 8080, Tags: []string{"a", "b"},
		Meta: map[string]string{"zone": "eu"}, Weight: 3, TTL: 1500 * time.Millisecond,
	}
	raw, err := encodeValue(inst, registry.HealthMaintenance)
	if err != nil {
		t.Fatal(err)
	}
	// The naming/endpoints shape: Op, Addr (bracketed IPv6), Metadata.
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["Op"] != float64(0) || generic["Addr"] != "[fd00::1]:8080" {
		t.Errorf("value %s: want Op 0 and Addr [fd00::1]:8080", raw)
	}
	got, err := decodeValue("web", "web-1", raw)
	if err != nil {
		t.Fatal(err)
	}
	inst.Health = registry.HealthMaintenance
	if got.ID != inst.ID || got.Address != inst.Address || got.Port != inst.Port || got.TTL != inst.TTL ||
		got.Weight != inst.Weight || got.Health != inst.Health || len(got.Tags) != 2 || got.Meta["zone"] != "eu" {
		t.Errorf("decoded %+v, want %+v", got, inst)
	}
}

func TestValueDeclaredHealth(t *testing.T) {
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Health: registry.HealthWarning}
	for _, tc := range []struct {
		operator, want registry.Health
	}{
		{"", registry.HealthWarning},
		{registry.HealthPassing, registry.HealthWarning},
		{registry.HealthCritical, registry.HealthCritical},
		{registry.HealthMaintenance, registry.HealthMaintenance},
	} {
		raw, err := encodeValue(inst, tc.operator)
		if err != nil {
			t.Fatal(err)
		}
		got, md, err := decodeMetadata("web", "web-1", raw)
		if err != nil {
			t.Fatal(err)
		}
		if got.Health != tc.want || md.Health != tc.operator || md.Declared != registry.HealthWarning {
			t.Errorf("operator %q, declared warning: health %q, stored %q and %q; want %q", tc.operator, got.Health, md.Health, md.Declared, tc.want)
		}
	}
	// Without a declaration the field is left out, so the value is what earlier versions wrote.
	inst.Health = ""
	raw, err := encodeValue(inst, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "declared_health") {
		t.Errorf("a value without a declaration mentions it: %s", raw)
	}
	// Older readers decode Metadata with encoding/json and ignore the field they do not know.
	inst.Health = registry.HealthCritical
	raw, _ = encodeValue(inst, "")
	var old struct {
		Metadata struct {
			Format string
			ID     string
			Health string
		}
	}
	if err := json.Unmarshal(raw, &old); err != nil || old.Metadata.Format != valueFormat || old.Metadata.ID != "web-1" || old.Metadata.Health != "" {
		t.Errorf("an older reader sees %+v (%v) in %s", old, err, raw)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := `{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"format":"sdctl/1","id":"web-1","name":"web","address":"10.0.0.1","port":80}}`
	if _, err := decodeValue("web", "web-1", []byte(valid)); err != nil {
		t.Fatalf("valid value: %v", err)
	}
	for name, value := range map[string]string{
		"NotJSON":           `hello`,
		"OtherJSON":         `{"foo":1}`,
		"JSONArray":         `[1,2]`,
		"EndpointsRecord":   `{"Op":0,"Addr":"10.0.0.1:80"}`,
		"EndpointsString":   `{"Op":0,"Addr":"10.0.0.1:80","Metadata":"x"}`,
		"DeleteOp":          strings.Replace(valid, `"Op":0`, `"Op":1`, 1),
		"OtherFormat":       strings.Replace(valid, `sdctl/1`, `sdctl/9`, 1),
		"WrongID":           strings.Replace(valid, `"id":"web-1"`, `"id":"web-2"`, 1),
		"WrongName":         strings.Replace(valid, `"name":"web"`, `"name":"api"`, 1),
		"AddrMismatch":      strings.Replace(valid, `"Addr":"10.0.0.1:80"`, `"Addr":"10.0.0.2:80"`, 1),
		"BadPort":           strings.ReplaceAll(strings.Replace(valid, `"port":80`, `"port":0`, 1), `10.0.0.1:80`, `10.0.0.1:0`),
		"BadTTL":            strings.Replace(valid, `"port":80`, `"port":80,"ttl":"soon"`, 1),
		"BadHealth":         strings.Replace(valid, `"port":80`, `"port":80,"health":"sleepy"`, 1),
		"BadDeclaredHealth": strings.Replace(valid, `"port":80`, `"port":80,"declared_health":"Critical"`, 1),
		"PortIsAString":     strings.Replace(valid, `"port":80`, `"port":"80"`, 1),
		"EmptyValue":        ``,
		"MetadataNull":      `{"Op":0,"Addr":"10.0.0.1:80","Metadata":null}`,
		"TruncatedMetadata": valid[:len(valid)-5],
	} {
		t.Run(name, func(t *testing.T) {
			if inst, err := decodeValue("web", "web-1", []byte(value)); err == nil {
				t.Errorf("decodeValue(%s) = %+v, want an error", value, inst)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	k := keys{prefix: "/services"}
	if got := k.instance("web", "web-1"); got != "/services/web/web-1" {
		t.Errorf("instance key %q", got)
	}
	for key, want := range map[string]bool{
		"/services/web/web-1":      true,
		"/services/web.internal/x": true,
		"/services/web":            false,
		"/services/web/":           false,
		"/services/web/a/b":        false,
		"/services/bad name/x":     false,
		"/servicesX/web/x":         false,
		"/services//x":             false,
	} {
		if _, _, ok := k.parse(key); ok != want {
			t.Errorf("parse(%q) ok = %v, want %v", key, ok, want)
		}
	}
}

// TestForeignValues puts what other tools (or accidents) leave under the prefix next to a real
// instance: every read skips them with one warning per key, and nothing crashes.
func TestForeignValues(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	var logs testutil.SyncBuffer
	b := open(t, Options{}, &logs, m)
	ctx := ctxFor(t, time.Minute)
	cli := etcdtest.Client(t, m)
	p := b.Prefix()

	good := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80}
	if err := b.Register(ctx, good); err != nil {
		t.Fatal(err)
	}
	foreign := map[string]string{
		p + "/web/garbage":    "\x00\xffnot json",
		p + "/web/other-json": `{"foo":1}`,
		p + "/web/wrong-id":   strings.Replace(mustEncode(t, good), `"id":"web-1"`, `"id":"web-9"`, 1),
		p + "/web":            `{"Op":0,"Addr":"10.0.0.9:80"}`,
		p + "/web/a/b":        `{}`,
		p + "/bad name/x":     `{}`,
	}
	for k, v := range foreign {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// What a gRPC server registering itself with etcd's endpoint manager writes.
	em, err := endpoints.NewManager(cli, p+"/web")
	if err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(ctx, p+"/web/grpc-server", endpoints.Endpoint{Addr: "10.0.0.8:9000"}); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		got, err := b.Instances(ctx, registry.Query{Name: "web"})
		if err != nil || len(got) != 1 || got[0].ID != "web-1" {
			t.Fatalf("Instances(web) = %v, %v; want web-1 only", ids(got), err)
		}
		svcs, err := b.Services(ctx)
		if err != nil || len(svcs) != 1 || svcs[0].Instances != 1 {
			t.Fatalf("Services = %+v, %v", svcs, err)
		}
	}
	events, _ := registrytest.WatchEvents(t, b, registry.WatchRequest{Name: "web"})
	if ev := registrytest.NextEvent(t, events, 10*time.Second); len(ev.Instances) != 1 {
		t.Fatalf("first watch event %v, want web-1 only", ids(ev.Instances))
	}
	// Garbage written during a watch changes nothing the watcher sees; the next real change does.
	if _, err := cli.Put(ctx, p+"/web/late-garbage", "{"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, registry.Instance{ID: "web-2", Name: "web", Address: "10.0.0.2", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if got := ids(registrytest.NextEvent(t, events, 10*time.Second).Instances); len(got) != 2 {
		t.Fatalf("watch event after garbage and a registration: %v, want web-1 and web-2", got)
	}

	out := logs.String()
	for _, k := range []string{p + "/web/garbage", p + "/web/other-json", p + "/web/wrong-id", p + "/web/grpc-server", p + "/web/late-garbage"} {
		if n := strings.Count(out, "key="+k+" "); n != 1 {
			t.Errorf("%d warnings for %s, want exactly 1:\n%s", n, k, out)
		}
	}
	if !strings.Contains(out, "level=WARN") {
		t.Errorf("no warning logged:\n%s", out)
	}
}

func mustEncode(t *testing.T, inst registry.Instance) string {
	t.Helper()
	raw, err := encodeValue(inst, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestExplicitHealth: an operator marks an instance in maintenance by editing its value; resolve
// (HealthyOnly) skips it, and re-registering it keeps the mark.
func TestExplicitHealth(t *testing.T) {
	t.Parallel()
	m := etcdtest.StartSingle(t)
	b := open(t, Options{}, nil, m)
	ctx := ctxFor(t, time.Minute)
	cli := etcdtest.Client(t, m)
	for i, id := range []string{"web-1", "web-2", "web-3"} {
		if err := b.Register(ctx, registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: 80 + i}); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(id string, h registry.Health) {
		t.Helper()
		key := b.Prefix() + "/web/" + id
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("Get(%s): %v", key, err)
		}
		v := strings.Replace(string(resp.Kvs[0].Value), `"format":"sdctl/1"`, `"format":"sdctl/1","health":"`+string(h)+`"`, 1)
		if _, err := cli.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	mark("web-1", registry.HealthMaintenance)
	mark("web-2", registry.HealthCritical)

	healthy, err := b.Instances(ctx, registry.Query{Name: "web", HealthyOnly: true})
	if err != nil || len(healthy) != 1 || healthy[0].ID != "web-3" {
		t.Fatalf("healthy instances = %v, %v; want web-3", ids(healthy), err)
	}
	all, err := b.Instances(ctx, registry.Query{Name: "web"})
	if err != nil || len(all) != 3 || all[0].Health != registry.HealthMaintenance || all[1].Health != registry.HealthCritical {
		t.Fatalf("all instances = %+v, %v", all, err)
	}
	svcs, err := b.Services(ctx)
	if err != nil || svcs[0].Passing != 1 {
		t.Fatalf("Services = %+v, %v; want 1 passing", svcs, err)
	}
	// Re-registration (a reconciling watcher, say) keeps the operator's decision.
	if err := b.Register(ctx, registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 80, Tags: []string{"new"}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Instances(ctx, registry.Query{Name: "web", Tags: []string{"new"}})
	if err != nil || len(got) != 1 || got[0].Health != registry.HealthMaintenance {
		t.Fatalf("after re-registration: %+v, %v; want web-1 still in maintenance", got, err)
	}

	// A declared health neither undoes the operator's mark nor outlives the registration that
	// declared it.
	health := func(id string) registry.Health {
		t.Helper()
		return registrytest.HealthOf(ctx, t, b, "web", id)
	}
	register := func(id string, port int, h registry.Health) {
		t.Helper()
		if err := b.Register(ctx, registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: port, Health: h}); err != nil {
			t.Fatal(err)
		}
	}
	register("web-1", 80, registry.HealthPassing)
	if h := health("web-1"); h != registry.HealthMaintenance {
		t.Errorf("operator maintenance, declared passing: health %q, want maintenance", h)
	}
	register("web-3", 82, registry.HealthCritical)
	if h := health("web-3"); h != registry.HealthCritical {
		t.Errorf("declared critical: health %q", h)
	}
	register("web-3", 82, "")
	if h := health("web-3"); h != registry.HealthPassing {
		t.Errorf("declaration dropped: health %q, want passing", h)
	}
	register("web-1", 80, "")
	if h := health("web-1"); h != registry.HealthMaintenance {
		t.Errorf("operator maintenance, declaration dropped: health %q, want maintenance", h)
	}
}
