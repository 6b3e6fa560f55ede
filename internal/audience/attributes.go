package audience

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Attribute is a profile attribute as a workspace's profiles show it: what
// the rule builder offers in its picker, with operators that fit its type
// and values to choose from.
type Attribute struct {
	Key string `json:"key"`
	// Type is the dominant observed type: string, number, boolean, date
	// (strings that start as an ISO date), object or array.
	Type  string           `json:"type"`
	Types map[string]int64 `json:"types"`
	// Fill is the share of the sampled profiles holding a non-null value.
	Fill float64 `json:"fill"`
	// Values are the most frequent scalar values, most frequent first.
	Values []ValueCount `json:"values"`
}

// ValueCount is a value and how many sampled profiles hold it.
type ValueCount struct {
	Value any   `json:"value"`
	Count int64 `json:"count"`
}

// Attributes is the list for a workspace, and what it was computed over.
type Attributes struct {
	Attributes []Attribute `json:"attributes"`
	// Profiles is how many profiles the workspace has; Sampled how many the
	// figures were computed over (all of them up to the sample size).
	Profiles int64 `json:"profiles"`
	Sampled  int64 `json:"sampled"`
}

// Bounds of an attribute listing: what a picker can show, and what one
// SQL pass may read.
const (
	MaxAttributes = 200
	ValuesPerAttr = 5
	// AttributesSample is what a listing reads: a fill rate over 20,000
	// profiles is within a percent, which a picker needs, at a fifth of
	// the cost of 100,000.
	AttributesSample = 20_000
	// CountSample is what a live count reads above which it estimates.
	CountSample   = 100_000
	maxValueBytes = 100
)

// Dominant returns the type with the highest count (ties broken by name).
func Dominant(types map[string]int64) string {
	best, n := "", int64(-1)
	for t, c := range types {
		if c > n || (c == n && t < best) {
			best, n = t, c
		}
	}
	return best
}

// Keep says whether a value is worth offering in the picker: a scalar of
// reasonable length.
func Keep(v any) bool {
	s, ok := v.(string)
	return !ok || (s != "" && len(s) <= maxValueBytes && utf8.ValidString(s))
}

// Fields lists the attribute names a rule reads, in order, once each.
func (r *Rule) Fields() []string {
	var out []string
	seen := map[string]bool{}
	var walk func(*Rule)
	walk = func(x *Rule) {
		if x == nil {
			return
		}
		if x.IsCondition() && !seen[x.Field] {
			seen[x.Field] = true
			out = append(out, x.Field)
		}
		for _, c := range x.All {
			walk(c)
		}
		for _, c := range x.Any {
			walk(c)
		}
		walk(x.Not)
	}
	walk(r)
	return out
}

// Suggest returns the known attribute closest to an unknown name ("signup
// date" → "signup"), or "" when none is close.
func Suggest(name string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(s))
	}
	n := norm(name)
	best, bestD := "", 1<<30
	for _, k := range known {
		kn := norm(k)
		d := distance(n, kn)
		if strings.HasPrefix(n, kn) || strings.HasPrefix(kn, n) {
			d = min(d, 1)
		}
		if d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > max(2, len(n)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// SortAttributes orders attributes most filled first, then by name.
func SortAttributes(list []Attribute) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Fill != list[j].Fill {
			return list[i].Fill > list[j].Fill
		}
		return list[i].Key < list[j].Key
	})
}
