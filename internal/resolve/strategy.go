package resolve

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"

	"github.com/sdctl/sdctl/registry"
)

// Strategy is how an instance is chosen among the healthy ones.
type Strategy string

// The strategies of `sdctl resolve --strategy`.
const (
	// StrategyRandom picks uniformly at random.
	StrategyRandom Strategy = "random"
	// StrategyRoundRobin takes turns across invocations, using a Counter.
	StrategyRoundRobin Strategy = "round-robin"
	// StrategyFirst picks the instance with the smallest ID, so repeated runs agree.
	StrategyFirst Strategy = "first"
	// StrategyWeighted picks at random in proportion to Instance.Weight.
	StrategyWeighted Strategy = "weighted"
)

// Strategies returns every strategy, in the order help texts list them.
func Strategies() []Strategy {
	return []Strategy{StrategyRandom, StrategyRoundRobin, StrategyFirst, StrategyWeighted}
}

// ParseStrategy parses the value of a --strategy flag. The error wraps registry.ErrInvalid and
// lists the strategies.
func ParseStrategy(s string) (Strategy, error) {
	for _, st := range Strategies() {
		if string(st) == s {
			return st, nil
		}
	}
	return "", registry.Invalidf("strategy", "unknown strategy %q (allowed: %s)", s, strategyList())
}

func strategyList() string {
	names := make([]string, 0, 4)
	for _, st := range Strategies() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

// ErrNoInstances is returned when there is no instance to pick from. errors.Is also matches it
// against registry.ErrNotFound, so the CLI reports it with the not-found exit code.
var ErrNoInstances error = noInstancesError{}

type noInstancesError struct{}

func (noInstancesError) Error() string        { return "no healthy instance" }
func (noInstancesError) Is(target error) bool { return target == registry.ErrNotFound }

// Counter hands out successive numbers per key: 0, 1, 2, ... for each key independently.
// Round-robin uses the number, modulo the number of instances, as the index to pick.
type Counter interface {
	Next(key string) (uint64, error)
}

// Picker chooses one instance with a strategy.
type Picker struct {
	// Strategy to apply; see the Strategy constants.
	Strategy Strategy
	// Counter keeps the round-robin position. Without one, round-robin picks at random.
	Counter Counter
	// Key names the round-robin rotation; see RoundRobinKey. Empty means the service name of
	// the instances.
	Key string
	// Rand is the source of randomness; nil uses math/rand/v2's automatically seeded source.
	Rand *rand.Rand
	// Fallback, when set, is told why round-robin picked at random instead (no Counter, or a
	// state file that could not be read or written). The pick itself still succeeds.
	Fallback func(err error)
}

// Pick chooses an instance with strategy s, using state for round-robin and falling back to a
// random pick, silently, when state fails. The round-robin key is the instances' service name;
// use a Picker to rotate per query (RoundRobinKey) or to learn about fallbacks.
func Pick(instances []registry.Instance, s Strategy, state Counter) (registry.Instance, error) {
	return Picker{Strategy: s, Counter: state}.Pick(instances)
}

// Pick chooses one of instances, which should be the healthy instances of one service. They are
// taken in ID order (as Registry.Instances returns them; other orders are sorted first), so that
// first and round-robin do not depend on how a backend lists them. An empty list is
// ErrNoInstances; an unknown strategy is an error wrapping registry.ErrInvalid.
func (p Picker) Pick(instances []registry.Instance) (registry.Instance, error) {
	if !slices.Contains(Strategies(), p.Strategy) {
		return registry.Instance{}, registry.Invalidf("strategy", "unknown strategy %q (allowed: %s)", p.Strategy, strategyList())
	}
	if len(instances) == 0 {
		return registry.Instance{}, ErrNoInstances
	}
	byID := func(a, b registry.Instance) int { return cmp.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(instances, byID) {
		instances = slices.Clone(instances)
		slices.SortFunc(instances, byID)
	}

	switch p.Strategy {
	case StrategyFirst:
		return instances[0], nil
	case StrategyWeighted:
		return instances[p.weightedIndex(instances)], nil
	case StrategyRoundRobin:
		if i, err := p.roundRobinIndex(instances); err == nil {
			return instances[i], nil
		} else if p.Fallback != nil {
			p.Fallback(err)
		}
	}
	return instances[p.intN(len(instances))], nil
}

func (p Picker) roundRobinIndex(instances []registry.Instance) (int, error) {
	if p.Counter == nil {
		return 0, errors.New("round-robin: no state to keep the position in")
	}
	key := p.Key
	if key == "" {
		key = RoundRobinKey(instances[0].Name, nil)
	}
	n, err := p.Counter.Next(key)
	if err != nil {
		return 0, fmt.Errorf("round-robin: %w", err)
	}
	return int(n % uint64(len(instances))), nil
}

// maxWeight caps a weight so that the sum over any number of instances fits in a uint64.
const maxWeight = math.MaxUint32

func weight(inst registry.Instance) uint64 {
	switch {
	case inst.Weight <= 0:
		return 1
	case uint64(inst.Weight) > maxWeight:
		return maxWeight
	}
	return uint64(inst.Weight)
}

// weightedIndex picks an index with probability weight/total. Weights of zero (unset) count as
// 1, as do negative ones, which validation rejects anyway.
func (p Picker) weightedIndex(instances []registry.Instance) int {
	var total uint64
	for _, inst := range instances {
		total += weight(inst)
	}
	r := p.uint64N(total)
	for i, inst := range instances {
		w := weight(inst)
		if r < w {
			return i
		}
		r -= w
	}
	return len(instances) - 1
}

func (p Picker) intN(n int) int {
	if p.Rand != nil {
		return p.Rand.IntN(n)
	}
	return rand.IntN(n)
}

func (p Picker) uint64N(n uint64) uint64 {
	if p.Rand != nil {
		return p.Rand.Uint64N(n)
	}
	return rand.Uint64N(n)
}

// RoundRobinKey names the rotation of a query: the service name, then the query's tags sorted,
// deduplicated and escaped, each after a '+' ("web", "web+canary+v2"). Queries for different
// tags of a service rotate independently; the order in which tags were given does not matter.
func RoundRobinKey(name string, tags []string) string {
	sorted := slices.Clone(tags)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var b strings.Builder
	b.WriteString(name)
	for _, t := range sorted {
		// Service names cannot contain '+' and QueryEscape escapes it in tags, so the key is
		// unambiguous.
		b.WriteByte('+')
		b.WriteString(url.QueryEscape(t))
	}
	return b.String()
}

// Position returns, for the strategies that choose by position among the matches in ID order
// (first, random, round-robin), the position to take modulo the number of matches, so that a
// backend can return that one instance instead of all of them (registry.Query.Pick). It
// advances the round-robin counter, exactly as Pick would. ok is false for weighted, which
// needs every match's weight.
func (p Picker) Position() (pos uint64, ok bool) {
	switch p.Strategy {
	case StrategyFirst:
		return 0, true
	case StrategyRandom:
		return p.uint64N(math.MaxUint64), true
	case StrategyRoundRobin:
		if p.Counter != nil && p.Key != "" {
			n, err := p.Counter.Next(p.Key)
			if err == nil {
				return n, true
			}
			if p.Fallback != nil {
				p.Fallback(fmt.Errorf("round-robin: %w", err))
			}
		} else if p.Fallback != nil {
			p.Fallback(errors.New("round-robin: no state to keep the position in"))
		}
		return p.uint64N(math.MaxUint64), true
	}
	return 0, false
}
