package resolve

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdctl/sdctl/registry"
)

func instances(ids ...string) []registry.Instance {
	out := make([]registry.Instance, len(ids))
	for i, id := range ids {
		out[i] = registry.Instance{ID: id, Name: "web", Address: "10.0.0.1", Port: 3000 + i}
	}
	return out
}

func TestParseStrategy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Strategy
		wantErr string
	}{
		{name: "random", in: "random", want: StrategyRandom},
		{name: "round-robin", in: "round-robin", want: StrategyRoundRobin},
		{name: "first", in: "first", want: StrategyFirst},
		{name: "weighted", in: "weighted", want: StrategyWeighted},
		{name: "unknown", in: "roundrobin", wantErr: `strategy: unknown strategy "roundrobin" (allowed: random, round-robin, first, weighted)`},
		{name: "empty", in: "", wantErr: `strategy: unknown strategy "" (allowed: random, round-robin, first, weighted)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStrategy(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseStrategy(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				if !errors.Is(err, registry.ErrInvalid) {
					t.Errorf("error does not wrap registry.ErrInvalid")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseStrategy(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPickErrorsAndFirst(t *testing.T) {
	tests := []struct {
		name      string
		instances []registry.Instance
		strategy  Strategy
		wantID    string
		wantErr   []error
	}{
		{name: "first takes the smallest ID", instances: instances("a", "b", "c"), strategy: StrategyFirst, wantID: "a"},
		{name: "first sorts unsorted input", instances: instances("c", "a", "b"), strategy: StrategyFirst, wantID: "a"},
		{name: "single instance random", instances: instances("only"), strategy: StrategyRandom, wantID: "only"},
		{name: "single instance weighted", instances: instances("only"), strategy: StrategyWeighted, wantID: "only"},
		{name: "no instances", strategy: StrategyFirst, wantErr: []error{ErrNoInstances, registry.ErrNotFound}},
		{name: "no instances round-robin", strategy: StrategyRoundRobin, wantErr: []error{ErrNoInstances}},
		{name: "unknown strategy", instances: instances("a"), strategy: "nearest", wantErr: []error{registry.ErrInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pick(tt.instances, tt.strategy, nil)
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Pick error = %v, want errors.Is %v", err, want)
				}
			}
			if len(tt.wantErr) > 0 {
				return
			}
			if err != nil || got.ID != tt.wantID {
				t.Fatalf("Pick = %q, %v; want %q", got.ID, err, tt.wantID)
			}
		})
	}
}

func TestPickDoesNotReorderInput(t *testing.T) {
	in := instances("c", "a", "b")
	if _, err := Pick(in, StrategyFirst, nil); err != nil {
		t.Fatal(err)
	}
	if in[0].ID != "c" || in[1].ID != "a" || in[2].ID != "b" {
		t.Errorf("Pick reordered its input: %v", in)
	}
}

// memCounter is an in-memory Counter; err makes every Next fail.
type memCounter struct {
	next map[string]uint64
	keys []string
	err  error
}

func (m *memCounter) Next(key string) (uint64, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.next == nil {
		m.next = map[string]uint64{}
	}
	m.keys = append(m.keys, key)
	n := m.next[key]
	m.next[key] = n + 1
	return n, nil
}

func TestPickRoundRobin(t *testing.T) {
	tests := []struct {
		name  string
		picks []struct {
			key string
			ids []string
		}
		want []string
	}{
		{
			name: "rotates in ID order",
			picks: []struct {
				key string
				ids []string
			}{
				{"web", []string{"a", "b", "c"}}, {"web", []string{"a", "b", "c"}}, {"web", []string{"a", "b", "c"}}, {"web", []string{"a", "b", "c"}},
			},
			want: []string{"a", "b", "c", "a"},
		},
		{
			name: "keys rotate independently",
			picks: []struct {
				key string
				ids []string
			}{
				{"web", []string{"a", "b"}}, {"web+canary", []string{"a", "b"}}, {"web", []string{"a", "b"}}, {"web+canary", []string{"a", "b"}},
			},
			want: []string{"a", "a", "b", "b"},
		},
		{
			name: "a shrinking set wraps by modulo",
			picks: []struct {
				key string
				ids []string
			}{
				{"web", []string{"a", "b", "c"}}, {"web", []string{"a", "b", "c"}}, {"web", []string{"a", "b"}},
			},
			want: []string{"a", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh FileCounter per pick, as each CLI invocation would have.
			path := filepath.Join(t.TempDir(), "state", "round-robin.json")
			for i, pk := range tt.picks {
				p := Picker{Strategy: StrategyRoundRobin, Counter: &FileCounter{Path: path}, Key: pk.key,
					Fallback: func(err error) { t.Errorf("unexpected fallback: %v", err) }}
				got, err := p.Pick(instances(pk.ids...))
				if err != nil {
					t.Fatal(err)
				}
				if got.ID != tt.want[i] {
					t.Errorf("pick %d = %q, want %q", i, got.ID, tt.want[i])
				}
			}
		})
	}
}

func TestPickRoundRobinDefaultKey(t *testing.T) {
	c := &memCounter{}
	for range 2 {
		if _, err := Pick(instances("a", "b"), StrategyRoundRobin, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(c.keys, ","); got != "web,web" {
		t.Errorf("keys used = %q, want the service name", got)
	}
}

func TestPickRoundRobinFallback(t *testing.T) {
	tests := []struct {
		name    string
		counter Counter
		want    string
	}{
		{name: "no counter", counter: nil, want: "no state"},
		{name: "counter fails", counter: &memCounter{err: errors.New("read-only file system")}, want: "read-only file system"},
		{name: "read-only state directory", counter: &FileCounter{Path: filepath.Join(notADir(t), "round-robin.json")}, want: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reported error
			p := Picker{Strategy: StrategyRoundRobin, Counter: tt.counter, Rand: rand.New(rand.NewPCG(1, 2)),
				Fallback: func(err error) { reported = err }}
			got, err := p.Pick(instances("a", "b", "c"))
			if err != nil {
				t.Fatalf("Pick failed instead of falling back: %v", err)
			}
			if got.ID == "" {
				t.Error("Pick returned no instance")
			}
			if reported == nil || !strings.Contains(reported.Error(), tt.want) {
				t.Errorf("fallback reported %v, want it to mention %q", reported, tt.want)
			}
		})
	}
}

// TestPickDistribution checks random and weighted picks land in proportion, within a tolerance
// wide enough for a fixed seed and narrow enough to catch a skewed implementation.
func TestPickDistribution(t *testing.T) {
	const picks = 60000
	weighted := instances("a", "b", "c", "d")
	weighted[0].Weight = 1
	weighted[1].Weight = 0 // counts as 1
	weighted[2].Weight = 3
	weighted[3].Weight = 5
	tests := []struct {
		name      string
		strategy  Strategy
		instances []registry.Instance
		want      map[string]float64
	}{
		{name: "random is uniform", strategy: StrategyRandom, instances: instances("a", "b", "c"), want: map[string]float64{"a": 1. / 3, "b": 1. / 3, "c": 1. / 3}},
		{name: "weighted follows weights", strategy: StrategyWeighted, instances: weighted, want: map[string]float64{"a": 0.1, "b": 0.1, "c": 0.3, "d": 0.5}},
		{name: "weighted without weights is uniform", strategy: StrategyWeighted, instances: instances("a", "b"), want: map[string]float64{"a": 0.5, "b": 0.5}},
		{name: "round-robin without state falls back to uniform", strategy: StrategyRoundRobin, instances: instances("a", "b"), want: map[string]float64{"a": 0.5, "b": 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Picker{Strategy: tt.strategy, Rand: rand.New(rand.NewPCG(7, 11))}
			counts := map[string]int{}
			for range picks {
				got, err := p.Pick(tt.instances)
				if err != nil {
					t.Fatal(err)
				}
				counts[got.ID]++
			}
			for id, share := range tt.want {
				got := float64(counts[id]) / picks
				if math.Abs(got-share) > 0.01 {
					t.Errorf("%s picked %.3f of the time, want %.3f ± 0.01", id, got, share)
				}
			}
		})
	}
}

func TestWeightCaps(t *testing.T) {
	in := instances("a", "b")
	in[0].Weight = math.MaxInt
	in[1].Weight = math.MaxInt
	p := Picker{Strategy: StrategyWeighted, Rand: rand.New(rand.NewPCG(1, 1))}
	if _, err := p.Pick(in); err != nil {
		t.Fatal(err)
	}
}

func TestRoundRobinKey(t *testing.T) {
	tests := []struct {
		name string
		svc  string
		tags []string
		want string
	}{
		{name: "name only", svc: "web", want: "web"},
		{name: "tags sorted", svc: "web", tags: []string{"v2", "canary"}, want: "web+canary+v2"},
		{name: "duplicates dropped", svc: "web", tags: []string{"a", "a"}, want: "web+a"},
		{name: "separators escaped", svc: "web", tags: []string{"a+b", "c,d"}, want: "web+a%2Bb+c%2Cd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RoundRobinKey(tt.svc, tt.tags); got != tt.want {
				t.Errorf("RoundRobinKey(%q, %q) = %q, want %q", tt.svc, tt.tags, got, tt.want)
			}
		})
	}
}

func TestPositionMatchesPick(t *testing.T) {
	insts := []registry.Instance{
		{ID: "a", Name: "web", Address: "10.0.0.1", Port: 1},
		{ID: "b", Name: "web", Address: "10.0.0.2", Port: 1},
		{ID: "c", Name: "web", Address: "10.0.0.3", Port: 1},
	}
	dir := t.TempDir()
	byPick := Picker{Strategy: StrategyRoundRobin, Key: "web", Counter: &FileCounter{Path: filepath.Join(dir, "a.json")}}
	byPos := Picker{Strategy: StrategyRoundRobin, Key: "web", Counter: &FileCounter{Path: filepath.Join(dir, "b.json")}}
	for range 7 {
		want, err := byPick.Pick(insts)
		if err != nil {
			t.Fatal(err)
		}
		pos, ok := byPos.Position()
		if !ok {
			t.Fatal("round-robin has no position")
		}
		if got := registry.PickFrom(insts, pos)[0]; got.ID != want.ID {
			t.Fatalf("position %d picks %s, Pick picked %s", pos, got.ID, want.ID)
		}
	}
	if pos, ok := (Picker{Strategy: StrategyFirst}).Position(); !ok || pos != 0 {
		t.Fatalf("first: %d %t", pos, ok)
	}
	if _, ok := (Picker{Strategy: StrategyWeighted}).Position(); ok {
		t.Fatal("weighted claims a position")
	}
}
