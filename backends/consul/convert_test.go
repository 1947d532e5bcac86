package consul

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sdctl/sdctl/registry"
)

func TestAggregate(t *testing.T) {
	check := func(id, status string) *healthCheck { return &healthCheck{CheckID: id, Status: status} }
	declared := func(service, status string, h registry.Health) *healthCheck {
		return &healthCheck{CheckID: declaredCheckID(service), ServiceID: service, Status: status, Notes: declaredNote(h), Type: "ttl"}
	}
	for _, tc := range []struct {
		name   string
		checks []*healthCheck
		want   registry.Health
	}{
		{"no checks", nil, registry.HealthPassing},
		{"node and service passing", []*healthCheck{check("serfHealth", "passing"), check("service:web-1", "passing")}, registry.HealthPassing},
		{"one warning", []*healthCheck{check("serfHealth", "passing"), check("service:web-1:1", "warning")}, registry.HealthWarning},
		{"critical beats warning", []*healthCheck{check("a", "warning"), check("b", "critical")}, registry.HealthCritical},
		{"node failed", []*healthCheck{check("serfHealth", "critical"), check("service:web-1", "passing")}, registry.HealthCritical},
		{"service maintenance", []*healthCheck{check("serfHealth", "passing"), check("_service_maintenance:web-1", "critical")}, registry.HealthMaintenance},
		{"node maintenance beats critical", []*healthCheck{check("_node_maintenance", "critical"), check("x", "critical")}, registry.HealthMaintenance},
		{"unknown status counts as critical", []*healthCheck{check("x", "bogus")}, registry.HealthCritical},
		{"declared critical", []*healthCheck{declared("web-1", "critical", registry.HealthCritical)}, registry.HealthCritical},
		{"declared maintenance", []*healthCheck{check("serfHealth", "passing"), declared("web-1", "critical", registry.HealthMaintenance)}, registry.HealthMaintenance},
		// Whoever sets the check's status has the last word; the notes only name maintenance.
		{"declared maintenance, check passed", []*healthCheck{declared("web-1", "passing", registry.HealthMaintenance)}, registry.HealthPassing},
		{"maintenance notes on another check", []*healthCheck{{CheckID: "service:web-1:1", ServiceID: "web-1", Status: "critical", Notes: declaredNote(registry.HealthMaintenance)}}, registry.HealthCritical},
		{"declared check of another service", []*healthCheck{{CheckID: declaredCheckID("web-2"), ServiceID: "web-1", Status: "critical", Notes: declaredNote(registry.HealthMaintenance)}}, registry.HealthCritical},
	} {
		if got := aggregate(tc.checks); got != tc.want {
			t.Errorf("%s: aggregate = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRegistration(t *testing.T) {
	inst := registry.Instance{
		ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000,
		Tags: []string{"v2"}, Meta: map[string]string{"zone": "a"}, Weight: 5, TTL: 15 * time.Second,
		Checks: []registry.Check{
			{Kind: registry.CheckHTTP, Target: "https://10.0.0.1:3000/health", Method: "head", Header: map[string][]string{"X-Probe": {"1"}},
				TLSSkipVerify: true, Interval: 5 * time.Second, Timeout: time.Second, DeregisterAfter: 10 * time.Minute, InitialStatus: registry.HealthWarning},
			{Kind: registry.CheckTCP, Target: "10.0.0.1:3000"},
			{Kind: registry.CheckGRPC, Target: "10.0.0.1:3001/web.Health", Interval: 2 * time.Second},
		},
	}
	reg, err := registration(inst)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(reg)
	got := string(b)
	for _, want := range []string{
		`"ID":"web-1"`, `"Name":"web"`, `"Address":"10.0.0.1"`, `"Port":3000`, `"Tags":["v2"]`, `"Meta":{"zone":"a"}`,
		`"Weights":{"Passing":5,"Warning":1}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("registration lacks %s:\n%s", want, got)
		}
	}
	wantChecks := []string{
		// The TTL check: the ID Consul and its clients use, passing from the start, TTL in the notes.
		`{"CheckID":"service:web-1","Name":"TTL of web-1","Notes":"ttl=15s (sdctl heartbeats pass this check)","Status":"passing","TTL":"15s"}`,
		`{"CheckID":"service:web-1:1","Name":"http check of web-1","Status":"warning","HTTP":"https://10.0.0.1:3000/health","Method":"HEAD","Header":{"X-Probe":["1"]},"TLSSkipVerify":true,"Interval":"5s","Timeout":"1s","DeregisterCriticalServiceAfter":"10m0s"}`,
		`{"CheckID":"service:web-1:2","Name":"tcp check of web-1","TCP":"10.0.0.1:3000","Interval":"10s"}`,
		`{"CheckID":"service:web-1:3","Name":"grpc check of web-1","GRPC":"10.0.0.1:3001/web.Health","Interval":"2s"}`,
	}
	if len(reg.Checks) != len(wantChecks) {
		t.Fatalf("registration has %d checks, want %d:\n%s", len(reg.Checks), len(wantChecks), got)
	}
	for i, want := range wantChecks {
		if g := jsonOf(t, reg.Checks[i]); g != normalJSON(t, want) {
			t.Errorf("check %d:\n%s\nwant\n%s", i, g, want)
		}
	}

	plain, err := registration(registry.Instance{ID: "a", Name: "a", Address: "10.0.0.1", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(plain); !strings.Contains(string(b), `"Weights":{"Passing":1,"Warning":1}`) || len(plain.Checks) != 0 {
		t.Errorf("registration without weight or checks: %s", b)
	}
}

func TestRegistrationDeclaredHealth(t *testing.T) {
	inst := registry.Instance{ID: "web-1", Name: "web", Address: "10.0.0.1", Port: 3000, TTL: 15 * time.Second,
		Checks: []registry.Check{{Kind: registry.CheckTCP, Target: "10.0.0.1:3000"}}}
	for h, status := range map[registry.Health]string{
		registry.HealthPassing:     "passing",
		registry.HealthWarning:     "warning",
		registry.HealthCritical:    "critical",
		registry.HealthMaintenance: "critical",
	} {
		inst.Health = h
		reg, err := registration(inst)
		if err != nil {
			t.Fatal(err)
		}
		if len(reg.Checks) != 3 || reg.Checks[0].CheckID != "service:web-1" || reg.Checks[1].CheckID != "service:web-1:1" {
			t.Fatalf("declared %s: checks %+v, want the TTL check, the tcp check and the declared one", h, reg.Checks)
		}
		b := jsonOf(t, reg.Checks[2])
		want := `{"CheckID":"service:web-1:declared","Name":"Declared health","Notes":"declared=` + string(h) +
			` (set by sdctl from the registration's declared health; registering the instance again changes or removes this check)","Status":"` + status + `","TTL":"87600h0m0s"}`
		if b != normalJSON(t, want) {
			t.Errorf("declared %s: check\n%s\nwant\n%s", h, b, want)
		}
		if got := parseDeclaredNote(reg.Checks[2].Notes); got != h {
			t.Errorf("parseDeclaredNote(%q) = %q, want %q", reg.Checks[2].Notes, got, h)
		}
	}
	inst.Health = "sick"
	if _, err := registration(inst); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("registration with health %q: %v, want ErrInvalid", inst.Health, err)
	}
}

func TestCheckDefRejects(t *testing.T) {
	for _, tc := range []struct {
		check registry.Check
		want  error
	}{
		{registry.Check{Kind: registry.CheckScript, Target: "/bin/true"}, registry.ErrUnsupported},
		{registry.Check{Kind: registry.CheckHTTP, Target: "10.0.0.1:80"}, registry.ErrInvalid},
		{registry.Check{Kind: registry.CheckHTTP, Target: "ftp://10.0.0.1/"}, registry.ErrInvalid},
		{registry.Check{Kind: registry.CheckTCP, Target: "10.0.0.1"}, registry.ErrInvalid},
		{registry.Check{Kind: registry.CheckGRPC, Target: "grpc.example/svc"}, registry.ErrInvalid},
		{registry.Check{Kind: "ping", Target: "x"}, registry.ErrInvalid},
		{registry.Check{Kind: registry.CheckTCP, Target: "a:1", InitialStatus: "maintenance"}, registry.ErrInvalid},
	} {
		_, err := checkDef(tc.check)
		if !errors.Is(err, tc.want) {
			t.Errorf("checkDef(%+v) = %v, want %v", tc.check, err, tc.want)
		}
	}
	_, err := checkDef(registry.Check{Kind: registry.CheckScript, Target: "/bin/true"})
	if !strings.Contains(err.Error(), "enable_script_checks") {
		t.Errorf("script check error %q does not say why", err)
	}
}

func TestInstanceFromHealthEntry(t *testing.T) {
	entry := &serviceEntry{
		Node: &entryNode{Node: "node-1", Address: "192.168.1.5"},
		Service: &entryService{ID: "web-1", Service: "web", Port: 3000, Tags: []string{}, Meta: map[string]string{},
			Weights: api.AgentWeights{Passing: 7, Warning: 2}},
		Checks: []*healthCheck{
			{CheckID: "serfHealth", Status: "passing", Type: ""},
			{CheckID: "service:web-1", Status: "passing", Type: "ttl", Notes: ttlNote(90 * time.Second)},
		},
	}
	inst := instance(entry)
	if inst.Address != "192.168.1.5" || inst.Node != "node-1" || inst.Weight != 7 || inst.TTL != 90*time.Second ||
		inst.Health != registry.HealthPassing || inst.Tags != nil || inst.Meta != nil {
		t.Errorf("instance = %+v", inst)
	}

	entry.Service.Address = "10.0.0.9"
	entry.Checks[1].Status = "warning"
	inst = instance(entry)
	if inst.Address != "10.0.0.9" || inst.Health != registry.HealthWarning || inst.Weight != 2 {
		t.Errorf("instance with its own address, warning = %+v", inst)
	}

	// A TTL check registered by someone else, without sdctl's note, gives no TTL.
	entry.Checks[1].Notes = ""
	if inst := instance(entry); inst.TTL != 0 {
		t.Errorf("TTL %v from a check without a note", inst.TTL)
	}
}

// healthAnswer is an answer of /v1/health/service/web as Consul 1.14 gives it, with every field
// of an entry, for the decoding tests: a drained instance with a TTL and a declared health,
// and a plain one on another node that takes the node's address.
const healthAnswer = `[
 {"Node": {"ID": "dcac2d1b-a353-4f33-3138-f50580fbda88", "Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1",
   "TaggedAddresses": {"lan": "10.0.0.1", "lan_ipv4": "10.0.0.1", "wan": "10.0.0.1", "wan_ipv4": "10.0.0.1"},
   "Meta": {"consul-network-segment": ""}, "CreateIndex": 6, "ModifyIndex": 7},
  "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1", "blue"], "Address": "10.0.0.9",
   "TaggedAddresses": {"lan_ipv4": {"Address": "10.0.0.9", "Port": 3000}, "wan_ipv4": {"Address": "10.0.0.9", "Port": 3000}},
   "Meta": {"sdctl-node": "n1", "sdctl-drain": "true"}, "Port": 3000, "Weights": {"Passing": 5, "Warning": 2},
   "EnableTagOverride": false, "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}}, "Connect": {}, "PeerName": "",
   "CreateIndex": 32, "ModifyIndex": 32},
  "Checks": [
   {"Node": "n1", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Notes": "",
    "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
    "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {}, "CreateIndex": 6, "ModifyIndex": 6},
   {"Node": "n1", "CheckID": "service:web-1", "Name": "TTL of web-1", "Status": "passing", "Notes": "ttl=30s (sdctl heartbeats pass this check)",
    "Output": "", "ServiceID": "web-1", "ServiceName": "web", "ServiceTags": ["v1", "blue"], "Type": "ttl",
    "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {}, "CreateIndex": 33, "ModifyIndex": 33},
   {"Node": "n1", "CheckID": "service:web-1:declared", "Name": "Declared health", "Status": "critical",
    "Notes": "declared=maintenance (set by sdctl)", "Output": "", "ServiceID": "web-1", "ServiceName": "web",
    "ServiceTags": [], "Type": "ttl", "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {},
    "CreateIndex": 34, "ModifyIndex": 34}]},
 {"Node": {"ID": "", "Node": "n2", "Address": "10.0.0.2", "Datacenter": "dc1", "TaggedAddresses": null, "Meta": null,
   "CreateIndex": 8, "ModifyIndex": 8},
  "Service": {"ID": "web-2", "Service": "web", "Tags": [], "Address": "", "TaggedAddresses": null, "Meta": {},
   "Port": 3001, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false, "Proxy": {}, "Connect": {},
   "CreateIndex": 40, "ModifyIndex": 40},
  "Checks": [{"Node": "n2", "CheckID": "serfHealth", "Status": "warning", "ServiceID": "", "Type": ""}]}
]`

// TestServiceEntryDecodesLikeConsulAPI checks that the reduced entries sdctl decodes give the
// same instances as consul/api's full ones.
func TestServiceEntryDecodesLikeConsulAPI(t *testing.T) {
	var full []*api.ServiceEntry
	if err := json.Unmarshal([]byte(healthAnswer), &full); err != nil {
		t.Fatal(err)
	}
	var lean []*serviceEntry
	if err := json.Unmarshal([]byte(healthAnswer), &lean); err != nil {
		t.Fatal(err)
	}
	want := instances(leanEntries(full), registry.Query{})
	got := instances(lean, registry.Query{})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded:\n%+v\nwant (through consul/api):\n%+v", got, want)
	}
	// What each field carries, so that the comparison cannot pass on two empty results.
	if len(got) != 2 || got[0].ID != "web-1" || got[0].Address != "10.0.0.9" || !got[0].Drain || got[0].TTL != 30*time.Second ||
		got[0].Health != registry.HealthMaintenance || !reflect.DeepEqual(got[0].Tags, []string{"v1", "blue"}) || got[0].Node != "n1" ||
		got[1].Address != "10.0.0.2" || got[1].Port != 3001 || got[1].Health != registry.HealthWarning || got[1].Weight != 1 {
		t.Errorf("instances %+v", got)
	}
}

func TestInstancesSortFilterPick(t *testing.T) {
	entry := func(id string, tags []string, status string) *serviceEntry {
		return &serviceEntry{Node: &entryNode{Node: "n", Address: "10.0.0.1"},
			Service: &entryService{ID: id, Service: "web", Port: 1, Tags: tags},
			Checks:  []*healthCheck{{CheckID: "c", Status: status}}}
	}
	entries := []*serviceEntry{
		entry("web-c", []string{"a"}, "passing"),
		entry("web-a", []string{"a", "b"}, "warning"),
		entry("web-b", []string{"b"}, "critical"),
		entry("web-d", []string{"a"}, "passing"),
	}
	for _, tc := range []struct {
		q    registry.Query
		want string
	}{
		{registry.Query{Name: "web"}, "web-a web-b web-c web-d"},
		{registry.Query{Name: "web", Tags: []string{"a"}}, "web-a web-c web-d"},
		{registry.Query{Name: "web", HealthyOnly: true}, "web-c web-d"},
		{registry.Query{Name: "web", HealthyOnly: true, IncludeWarning: true}, "web-a web-c web-d"},
		{registry.Query{Name: "web", Tags: []string{"a", "b"}}, "web-a"},
	} {
		if got := strings.Join(ids(instances(entries, tc.q)), " "); got != tc.want {
			t.Errorf("instances(%+v) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestParseTTLNote(t *testing.T) {
	for notes, want := range map[string]time.Duration{
		ttlNote(time.Second):      time.Second,
		ttlNote(90 * time.Minute): 90 * time.Minute,
		"":                        0,
		"ttl=soon":                0,
		"ttl=-5s":                 0,
		"see ttl=5s here":         5 * time.Second,
	} {
		if got := parseTTLNote(notes); got != want {
			t.Errorf("parseTTLNote(%q) = %v, want %v", notes, got, want)
		}
	}
}

// jsonOf is v as JSON with its keys sorted, for comparisons that ignore field order.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return normalJSON(t, string(b))
}

// normalJSON sorts the keys of the JSON object s.
func normalJSON(t *testing.T, s string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	b, _ := json.Marshal(m)
	return string(b)
}
