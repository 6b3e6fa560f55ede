// Package audience is the targeting side of orchestrated campaigns:
// profiles and their import formats, the rule builder's rules and their
// compilation to parameterized SQL, the canvas of activities that compute
// populations in the database, and Save audience.
package audience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
)

// Limits on rules: beyond them a rule is refused rather than sent to the
// database.
const (
	MaxRuleDepth  = 32
	MaxRuleNodes  = 1000
	MaxInValues   = 10_000
	MaxFieldBytes = 128
)

// Op is a condition operator.
type Op string

const (
	OpEq         Op = "eq"
	OpNe         Op = "ne"
	OpIn         Op = "in"
	OpNin        Op = "nin"
	OpContains   Op = "contains"
	OpStartsWith Op = "starts_with"
	OpEndsWith   Op = "ends_with"
	OpGt         Op = "gt"
	OpGte        Op = "gte"
	OpLt         Op = "lt"
	OpLte        Op = "lte"
	OpBetween    Op = "between"
	OpEmpty      Op = "empty"
	OpNotEmpty   Op = "not_empty"
	OpBefore     Op = "before"
	OpAfter      Op = "after"
	OpWithinDays Op = "within_days"
)

// Rule is a condition or a group. Exactly one of the shapes is set.
type Rule struct {
	// A condition.
	Field string
	Op    Op
	Value any // string, float64, bool, []any, time.Time (dates), per Op

	All []*Rule
	Any []*Rule
	Not *Rule
}

// IsCondition reports whether r is a leaf.
func (r *Rule) IsCondition() bool { return r.Op != "" }

// ParseRule decodes and validates a rule; errors name the offending node's
// path (rule.all[1].any[0]: ...).
func ParseRule(raw json.RawMessage) (*Rule, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errcode.New(errcode.Invalid, "rule: missing")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, errcode.New(errcode.Invalid, "rule: malformed JSON: %v", err)
	}
	nodes := 0
	return parseNode(v, "rule", 1, &nodes)
}

func bad(path, format string, args ...any) error {
	return errcode.New(errcode.Invalid, "%s: %s", path, fmt.Sprintf(format, args...))
}

func parseNode(v any, path string, depth int, nodes *int) (*Rule, error) {
	*nodes++
	if *nodes > MaxRuleNodes {
		return nil, bad(path, "the rule has more than %d nodes", MaxRuleNodes)
	}
	if depth > MaxRuleDepth {
		return nil, bad(path, "the rule nests deeper than %d levels", MaxRuleDepth)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bad(path, "a rule is an object: a condition {field, op, value} or a group {all}, {any}, {not}")
	}
	for _, group := range []string{"all", "any"} {
		if list, ok := m[group]; ok {
			if len(m) != 1 {
				return nil, bad(path, "a %q group has no other keys", group)
			}
			items, ok := list.([]any)
			if !ok || len(items) == 0 {
				return nil, bad(path+"."+group, "must be a non-empty array of rules")
			}
			r := &Rule{}
			for i, it := range items {
				child, err := parseNode(it, fmt.Sprintf("%s.%s[%d]", path, group, i), depth+1, nodes)
				if err != nil {
					return nil, err
				}
				if group == "all" {
					r.All = append(r.All, child)
				} else {
					r.Any = append(r.Any, child)
				}
			}
			return r, nil
		}
	}
	if inner, ok := m["not"]; ok {
		if len(m) != 1 {
			return nil, bad(path, `a "not" group has no other keys`)
		}
		child, err := parseNode(inner, path+".not", depth+1, nodes)
		if err != nil {
			return nil, err
		}
		return &Rule{Not: child}, nil
	}
	return parseCondition(m, path)
}

func parseCondition(m map[string]any, path string) (*Rule, error) {
	for k := range m {
		if k != "field" && k != "op" && k != "value" {
			return nil, bad(path, "unknown key %q (a condition has field, op and value)", k)
		}
	}
	field, ok := m["field"].(string)
	if !ok || field == "" || len(field) > MaxFieldBytes || strings.ContainsAny(field, "\x00\n\r\"\\") {
		return nil, bad(path+".field", "must be a non-empty attribute name of at most %d bytes, without quotes or backslashes", MaxFieldBytes)
	}
	opName, _ := m["op"].(string)
	r := &Rule{Field: field, Op: Op(opName)}
	val, hasValue := m["value"]
	need := func(shape string, ok bool) error {
		if !ok {
			return bad(path+".value", "%s needs %s", opName, shape)
		}
		return nil
	}
	var err error
	switch r.Op {
	case OpEq, OpNe:
		r.Value, ok = scalar(val)
		err = need("a string, number or boolean", hasValue && ok)
	case OpIn, OpNin:
		list, isList := val.([]any)
		err = need(fmt.Sprintf("an array of 1 to %d strings, numbers or booleans", MaxInValues), isList && len(list) > 0 && len(list) <= MaxInValues)
		if err == nil {
			vals := make([]any, len(list))
			for i, it := range list {
				if vals[i], ok = scalar(it); !ok {
					return nil, bad(fmt.Sprintf("%s.value[%d]", path, i), "must be a string, number or boolean")
				}
			}
			r.Value = vals
		}
	case OpContains, OpStartsWith, OpEndsWith:
		s, isStr := val.(string)
		err = need("a non-empty string", isStr && s != "")
		r.Value = s
	case OpGt, OpGte, OpLt, OpLte:
		r.Value, ok = number(val)
		err = need("a number", ok)
	case OpBetween:
		list, isList := val.([]any)
		err = need("[lo, hi], two numbers with lo <= hi", isList && len(list) == 2)
		if err == nil {
			lo, ok1 := number(list[0])
			hi, ok2 := number(list[1])
			err = need("[lo, hi], two numbers with lo <= hi", ok1 && ok2 && lo <= hi)
			r.Value = []any{lo, hi}
		}
	case OpEmpty, OpNotEmpty:
		err = need("no value", !hasValue || val == nil)
	case OpBefore, OpAfter:
		s, isStr := val.(string)
		t, perr := time.Parse(time.RFC3339, s)
		err = need("an RFC 3339 date such as 2024-03-01T00:00:00Z", isStr && perr == nil)
		r.Value = t
	case OpWithinDays:
		n, ok := number(val)
		err = need("a positive number of days", ok && n > 0 && n <= 36500)
		r.Value = n
	case "":
		return nil, bad(path+".op", "missing operator")
	default:
		return nil, bad(path+".op", "unknown operator %q", opName)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func scalar(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool:
		return x, true
	case json.Number:
		return number(x)
	}
	return nil, false
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
