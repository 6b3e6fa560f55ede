package audience

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Dialect is the SQL flavour a query is compiled for.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

// Query is SQL text with its arguments. Every value, field name and JSON
// path is an argument ($1, $2...): nothing from a rule is ever pasted into
// the text.
type Query struct {
	d    Dialect
	args []any
}

// NewQuery starts a query for a dialect.
func NewQuery(d Dialect) *Query { return &Query{d: d} }

// Args returns the arguments bound so far.
func (q *Query) Args() []any { return q.args }

// Dialect returns the query's dialect.
func (q *Query) Dialect() Dialect { return q.d }

// Arg binds v and returns its placeholder.
func (q *Query) Arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// field is how a query reaches one attribute of the profile row p.
type field struct {
	value string // the attribute as an SQL value (text, number...)
	json  string // the attribute as JSON
	typ   string // its JSON type name, or NULL when absent
	text  string // as text
	isID  bool
}

// jsonTypes names JSON types in each dialect's own words.
func (q *Query) typeName(t string) string {
	if q.d == Postgres {
		return "'" + t + "'"
	}
	switch t {
	case "string":
		return "'text'"
	case "number":
		return "'integer','real'"
	case "boolean":
		return "'true','false'"
	}
	return "'" + t + "'"
}

func (q *Query) attr(alias, name string) field {
	if name == "id" {
		id := alias + ".id"
		return field{value: id, json: id, typ: "'string'", text: id, isID: true}
	}
	if q.d == Postgres {
		a := q.Arg(name)
		return field{value: alias + ".attrs -> " + a, json: alias + ".attrs -> " + a,
			typ: "jsonb_typeof(" + alias + ".attrs -> " + a + ")", text: "(" + alias + ".attrs ->> " + a + ")"}
	}
	a := q.Arg(`$."` + name + `"`)
	return field{value: "json_extract(" + alias + ".attrs, " + a + ")", json: "(" + alias + ".attrs -> " + a + ")",
		typ: "json_type(" + alias + ".attrs, " + a + ")", text: "json_extract(" + alias + ".attrs, " + a + ")"}
}

// Where compiles r to a boolean SQL expression over the profile row alias.
// Every condition is false, never NULL, when its attribute is missing or of
// another type, so that "not" is plain negation.
func (q *Query) Where(r *Rule, alias string) string {
	switch {
	case r.All != nil:
		return q.group(r.All, alias, " AND ")
	case r.Any != nil:
		return q.group(r.Any, alias, " OR ")
	case r.Not != nil:
		return "(NOT " + q.Where(r.Not, alias) + ")"
	}
	return "COALESCE((" + q.condition(r, alias) + "), FALSE)"
}

func (q *Query) group(rs []*Rule, alias, sep string) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = q.Where(r, alias)
	}
	return "(" + strings.Join(parts, sep) + ")"
}

func (q *Query) is(f field, types ...string) string {
	if f.isID {
		for _, t := range types {
			if t == "string" {
				return "TRUE"
			}
		}
		return "FALSE"
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = q.typeName(t)
	}
	return f.typ + " IN (" + strings.Join(names, ",") + ")"
}

func (q *Query) condition(r *Rule, alias string) string {
	f := q.attr(alias, r.Field)
	switch r.Op {
	case OpEq:
		return q.equals(f, r.Value)
	case OpNe:
		return q.present(f) + " AND NOT (" + q.equals(f, r.Value) + ")"
	case OpIn:
		return q.in(f, r.Value.([]any))
	case OpNin:
		return q.present(f) + " AND NOT (" + q.in(f, r.Value.([]any)) + ")"
	case OpContains, OpStartsWith, OpEndsWith:
		v := q.Arg(r.Value.(string))
		var test string
		switch {
		case r.Op == OpContains && q.d == Postgres:
			test = "strpos(" + f.text + ", " + v + "::text) > 0"
		case r.Op == OpContains:
			test = "instr(" + f.text + ", " + v + ") > 0"
		case r.Op == OpStartsWith && q.d == Postgres:
			test = "left(" + f.text + ", char_length(" + v + "::text)) = " + v + "::text"
		case r.Op == OpStartsWith:
			test = "substr(" + f.text + ", 1, length(" + v + ")) = " + v
		case q.d == Postgres:
			test = "right(" + f.text + ", char_length(" + v + "::text)) = " + v + "::text"
		default:
			test = "substr(" + f.text + ", -length(" + v + ")) = " + v
		}
		return q.is(f, "string") + " AND " + test
	case OpGt, OpGte, OpLt, OpLte:
		return q.numeric(f) + " " + map[Op]string{OpGt: ">", OpGte: ">=", OpLt: "<", OpLte: "<="}[r.Op] + " " + q.num(r.Value.(float64))
	case OpBetween:
		b := r.Value.([]any)
		n := q.numeric(f)
		return n + " >= " + q.num(b[0].(float64)) + " AND " + n + " <= " + q.num(b[1].(float64))
	case OpEmpty:
		return q.empty(f)
	case OpNotEmpty:
		return "NOT (" + q.empty(f) + ")"
	case OpBefore:
		return q.date(f) + " < " + q.dateArg(r.Value.(time.Time))
	case OpAfter:
		return q.date(f) + " > " + q.dateArg(r.Value.(time.Time))
	case OpWithinDays:
		now := time.Now().UTC()
		from := now.Add(-time.Duration(r.Value.(float64) * float64(24*time.Hour)))
		d := q.date(f)
		return d + " >= " + q.dateArg(from) + " AND " + d + " <= " + q.dateArg(now)
	}
	return "FALSE"
}

func (q *Query) num(v float64) string {
	if q.d == Postgres {
		return q.Arg(v) + "::numeric"
	}
	return q.Arg(v)
}

func (q *Query) numeric(f field) string {
	if f.isID {
		return "NULL"
	}
	if q.d == Postgres {
		return "(CASE WHEN " + f.typ + " = 'number' THEN (" + f.text + ")::numeric END)"
	}
	return "(CASE WHEN " + q.is(f, "number") + " THEN " + f.value + " END)"
}

func (q *Query) present(f field) string {
	if f.isID {
		return "TRUE"
	}
	return "COALESCE(" + f.typ + ", 'null') <> 'null'"
}

// equals compares with JSON semantics: the same type and value.
func (q *Query) equals(f field, v any) string {
	if f.isID {
		s, ok := v.(string)
		if !ok {
			return "FALSE"
		}
		return f.value + " = " + q.Arg(s)
	}
	if q.d == Postgres {
		raw, _ := json.Marshal(v)
		return f.json + " = " + q.Arg(string(raw)) + "::jsonb"
	}
	switch x := v.(type) {
	case bool:
		if x {
			return f.typ + " = 'true'"
		}
		return f.typ + " = 'false'"
	case float64:
		return q.is(f, "number") + " AND " + f.value + " = " + q.Arg(x)
	default:
		return q.is(f, "string") + " AND " + f.value + " = " + q.Arg(x)
	}
}

func (q *Query) in(f field, vals []any) string {
	if f.isID {
		var ids []any
		for _, v := range vals {
			if s, ok := v.(string); ok {
				ids = append(ids, s)
			}
		}
		raw, _ := json.Marshal(ids)
		if q.d == Postgres {
			return f.value + " IN (SELECT jsonb_array_elements_text(" + q.Arg(string(raw)) + "::jsonb))"
		}
		return f.value + " IN (SELECT value FROM json_each(" + q.Arg(string(raw)) + "))"
	}
	raw, _ := json.Marshal(vals)
	if q.d == Postgres {
		return f.json + " IN (SELECT jsonb_array_elements(" + q.Arg(string(raw)) + "::jsonb))"
	}
	// An uncorrelated subquery: SQLite builds its set once per query.
	return q.is(f, "string", "number", "boolean") + " AND " + f.value + " IN (SELECT value FROM json_each(" + q.Arg(string(raw)) + "))"
}

func (q *Query) empty(f field) string {
	if f.isID {
		return "FALSE"
	}
	if q.d == Postgres {
		return "(COALESCE(" + f.typ + ", 'null') = 'null' OR " + f.json + " IN ('\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb))"
	}
	return "(COALESCE(" + f.typ + ", 'null') = 'null' OR (" + f.typ + " = 'text' AND " + f.value + " = '') OR (" +
		f.typ + " IN ('array','object') AND " + f.json + " IN ('[]','{}')))"
}

func (q *Query) date(f field) string {
	if q.d == Postgres {
		return "collab_timestamptz(" + f.text + ")"
	}
	return "(CASE WHEN " + q.is(f, "string") + " THEN julianday(" + f.value + ") END)"
}

func (q *Query) dateArg(t time.Time) string {
	if q.d == Postgres {
		return q.Arg(t.UTC()) + "::timestamptz"
	}
	return "julianday(" + q.Arg(t.UTC().Format(time.RFC3339Nano)) + ")"
}
