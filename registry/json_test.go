package registry_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sdctl/sdctl/registry"
)

func TestInstanceJSONDurations(t *testing.T) {
	in := registry.Instance{ID: "a", Name: "a", Address: "10.0.0.1", Port: 80, TTL: 90 * time.Second,
		Checks: []registry.Check{{Kind: registry.CheckTCP, Target: "10.0.0.1:80", Interval: 5 * time.Second}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"ttl":"1m30s"`) || !strings.Contains(s, `"interval":"5s"`) || strings.Count(s, `"ttl"`) != 1 {
		t.Fatalf("JSON %s lacks readable durations", s)
	}
	if strings.Contains(s, `"timeout"`) || strings.Contains(s, `"expires"`) {
		t.Fatalf("JSON %s has zero fields", s)
	}
	var back registry.Instance
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.TTL != in.TTL || back.Checks[0].Interval != 5*time.Second || back.Port != 80 {
		t.Fatalf("round trip: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"ttl": 1000000000}`), &back); err != nil || back.TTL != time.Second {
		t.Fatalf("nanoseconds: %v %v", back.TTL, err)
	}
	if err := json.Unmarshal([]byte(`{"ttl": "soon"}`), &back); err == nil {
		t.Fatal("accepted a bad duration")
	}
}
