package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/collab-dev/collab/internal/errcode"
)

// Schema is a workspace's JSON Schema (draft 2020-12) for its campaign
// documents. An edit is checked where it lands, not over the whole
// document: each op's new value against the subschema of its path, and
// the object or array that holds it against the keywords about its own
// members (required, sizes). A path under a combinator (allOf, anyOf,
// oneOf, not, if, patternProperties...) is checked from the nearest
// ancestor that has one, which is correct for any schema and costs what
// that subtree costs. So the cost of an edit follows the size of what it
// touches, not the document's.
//
// A subschema may carry "x-collab-role": "admin" (or "editor"): ops at,
// under or over its path need that role.
type Schema struct {
	raw      any
	compiler *jsonschema.Compiler
	roles    []roleRule

	mu    sync.Mutex // guards cache
	cache map[string]*jsonschema.Schema
}

type roleRule struct {
	path []string // "*" stands for any member (items, additionalProperties)
	role string
}

const schemaURL = "collab:document-schema.json"

// memberKeywords are the keywords about an object's or array's own members
// (not their values): all a parent needs re-checked when a member changes.
var memberKeywords = []string{"type", "required", "minProperties", "maxProperties", "dependentRequired",
	"propertyNames", "minItems", "maxItems", "uniqueItems"}

// combinators make a subschema depend on more than one path: a path below
// one is checked from there.
var combinators = []string{"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas",
	"unevaluatedProperties", "unevaluatedItems", "patternProperties", "prefixItems", "contains", "$dynamicRef"}

// CompileSchema compiles a document schema; errcode.Invalid says why not.
func CompileSchema(raw []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, errcode.New(errcode.Invalid, "schema: not JSON: %v", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errcode.New(errcode.Invalid, "schema: must be a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, errcode.New(errcode.Invalid, "schema: %v", err)
	}
	s := &Schema{raw: doc, compiler: c, cache: map[string]*jsonschema.Schema{}}
	if _, err := s.compiled(""); err != nil {
		return nil, errcode.New(errcode.Invalid, "schema: %v", err)
	}
	s.collectRoles(doc, nil, 0)
	return s, nil
}

// compiled returns the subschema at a JSON Pointer into the schema.
func (s *Schema) compiled(loc string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch := s.cache[loc]; sch != nil {
		return sch, nil
	}
	sch, err := s.compiler.Compile(schemaURL + "#" + loc)
	if err != nil {
		return nil, err
	}
	s.cache[loc] = sch
	return sch, nil
}

// members returns the member keywords of the subschema at loc, compiled
// on their own.
func (s *Schema) members(loc string, node map[string]any) (*jsonschema.Schema, error) {
	key := "members:" + loc
	s.mu.Lock()
	sch := s.cache[key]
	s.mu.Unlock()
	if sch != nil {
		return sch, nil
	}
	shallow := map[string]any{}
	for _, k := range memberKeywords {
		if v, ok := node[k]; ok {
			shallow[k] = v
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "collab:members" + loc
	if err := c.AddResource(url, shallow); err != nil {
		return nil, err
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cache[key] = sch
	s.mu.Unlock()
	return sch, nil
}

func escapeToken(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

// resolve follows local $refs ("#/..."), at most a few deep.
func (s *Schema) resolve(node any, loc string) (map[string]any, string) {
	for range 16 {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, loc
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#") || len(m) > 1 {
			return m, loc // a $ref beside other keywords: checked here, as a whole
		}
		loc = strings.TrimPrefix(ref, "#")
		node = s.at(loc)
	}
	return nil, loc
}

// at returns the schema node at a JSON Pointer.
func (s *Schema) at(loc string) any {
	cur := s.raw
	if loc == "" {
		return cur
	}
	for _, tok := range strings.Split(loc[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

// target is where a path is checked from.
type target struct {
	depth int    // how many of the path's tokens the subschema covers
	loc   string // the subschema's location ("" the root)
	node  map[string]any
	free  bool // no constraint applies below: nothing to check
}

// locate walks the schema along p as far as it can go member by member.
func (s *Schema) locate(p Pointer) target {
	node, loc := s.resolve(s.raw, "")
	for i, tok := range p {
		if node == nil {
			return target{depth: i, free: true}
		}
		if hasCombinator(node) {
			return target{depth: i, loc: loc, node: node}
		}
		var next any
		var nextLoc string
		if props, ok := node["properties"].(map[string]any); ok && props[tok] != nil {
			next, nextLoc = props[tok], loc+"/properties/"+escapeToken(tok)
		} else if items, ok := node["items"]; ok && isIndex(tok) {
			next, nextLoc = items, loc+"/items"
		} else if ap, ok := node["additionalProperties"]; ok {
			next, nextLoc = ap, loc+"/additionalProperties"
		} else {
			return target{depth: i, free: true} // anything goes below
		}
		if b, ok := next.(bool); ok {
			if b {
				return target{depth: i + 1, free: true}
			}
			return target{depth: i, loc: loc, node: node} // false: the parent refuses the member
		}
		node, loc = s.resolve(next, nextLoc)
	}
	return target{depth: len(p), loc: loc, node: node}
}

func hasCombinator(node map[string]any) bool {
	for _, k := range combinators {
		if _, ok := node[k]; ok {
			return true
		}
	}
	return false
}

func isIndex(tok string) bool {
	if tok == "-" {
		return true
	}
	for _, c := range tok {
		if c < '0' || c > '9' {
			return false
		}
	}
	return tok != ""
}

// Check checks ops, already applied to doc, against the schema: doc is the
// document as the edit leaves it. role is the editor's.
func (s *Schema) Check(doc Document, ops []Op, role string) error {
	for _, op := range ops {
		if !op.Writes() {
			continue
		}
		if need := s.roleFor(op.Pointer); need != "" && !roleAtLeast(role, need) {
			return errcode.New(errcode.Forbidden, "%s needs the %s role (x-collab-role in the workspace's schema); this session is a %s's", op.Path, need, role)
		}
		p := op.Pointer
		if n := len(p); n > 0 && p[n-1] == "-" {
			// An append: the value is now the array's last item.
			if arr, ok := doc.Get(p[:n-1]); ok {
				if a, ok := arr.([]any); ok && len(a) > 0 {
					p = append(append(Pointer(nil), p[:n-1]...), strconv.Itoa(len(a)-1))
				}
			}
		}
		// The value written, against its own subschema (or the nearest
		// ancestor's that can judge it).
		if op.Op != "remove" {
			if err := s.checkAt(doc, p, false); err != nil {
				return err
			}
		}
		// The container that gained, lost or changed a member.
		if len(p) > 0 {
			if err := s.checkAt(doc, p[:len(p)-1], true); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAt validates the document at p: its whole value against the
// subschema of p, or with members only its member keywords.
func (s *Schema) checkAt(doc Document, p Pointer, members bool) error {
	t := s.locate(p)
	if t.free {
		return nil
	}
	if t.depth < len(p) {
		// Checked from an ancestor: the whole ancestor, the only sound way.
		p, members = p[:t.depth], false
	}
	if members && hasCombinator(t.node) {
		members = false // its members' rules are not its own keywords alone
	}
	v, ok := doc.Get(p)
	if !ok {
		return nil // removed together with its parent
	}
	if members && !needsValidator(t.node) {
		if err := checkMembers(t.node, v); err != nil {
			return errcode.New(errcode.Invalid, "schema: %s breaks rule %q: %v", pathOrRoot(p), "#"+t.loc+"/"+err.rule, err.msg)
		}
		return nil
	}
	var sch *jsonschema.Schema
	var err error
	if members {
		sch, err = s.members(t.loc, t.node)
	} else {
		sch, err = s.compiled(t.loc)
	}
	if err != nil {
		return errcode.New(errcode.Internal, "schema at %s: %v", t.loc, err)
	}
	if err := sch.Validate(asInstance(v)); err != nil {
		return violation(p, err)
	}
	return nil
}

// needsValidator reports member keywords checkMembers does not handle.
func needsValidator(node map[string]any) bool {
	_, names := node["propertyNames"]
	_, unique := node["uniqueItems"]
	return names || unique
}

type memberError struct{ rule, msg string }

// checkMembers checks a container's own member keywords by hand: the
// validator would walk the whole container to judge its type, and a parent
// of a changed member can be most of the document.
func checkMembers(node map[string]any, v any) *memberError {
	obj, isObj := v.(map[string]any)
	if d, ok := v.(Document); ok {
		obj, isObj = map[string]any(d), true
	}
	arr, isArr := v.([]any)
	if t, ok := node["type"]; ok {
		types := []any{t}
		if list, ok := t.([]any); ok {
			types = list
		}
		okType := false
		for _, x := range types {
			switch x {
			case "object":
				okType = okType || isObj
			case "array":
				okType = okType || isArr
			case "null":
				okType = okType || v == nil
			default:
				okType = okType || (!isObj && !isArr && v != nil) // a scalar: its own check judged it
			}
		}
		if !okType {
			return &memberError{"type", fmt.Sprintf("want %v", t)}
		}
	}
	num := func(k string) (int, bool) {
		switch n := node[k].(type) {
		case json.Number:
			i, err := n.Int64()
			return int(i), err == nil
		case float64:
			return int(n), true
		}
		return 0, false
	}
	if isObj {
		if req, ok := node["required"].([]any); ok {
			for _, r := range req {
				if name, _ := r.(string); name != "" {
					if _, present := obj[name]; !present {
						return &memberError{"required", fmt.Sprintf("missing property %q", name)}
					}
				}
			}
		}
		if n, ok := num("minProperties"); ok && len(obj) < n {
			return &memberError{"minProperties", fmt.Sprintf("%d properties, at least %d", len(obj), n)}
		}
		if n, ok := num("maxProperties"); ok && len(obj) > n {
			return &memberError{"maxProperties", fmt.Sprintf("%d properties, at most %d", len(obj), n)}
		}
		if deps, ok := node["dependentRequired"].(map[string]any); ok {
			for k, list := range deps {
				if _, present := obj[k]; !present {
					continue
				}
				names, _ := list.([]any)
				for _, r := range names {
					if name, _ := r.(string); name != "" {
						if _, present := obj[name]; !present {
							return &memberError{"dependentRequired", fmt.Sprintf("%q needs %q", k, name)}
						}
					}
				}
			}
		}
	}
	if isArr {
		if n, ok := num("minItems"); ok && len(arr) < n {
			return &memberError{"minItems", fmt.Sprintf("%d items, at least %d", len(arr), n)}
		}
		if n, ok := num("maxItems"); ok && len(arr) > n {
			return &memberError{"maxItems", fmt.Sprintf("%d items, at most %d", len(arr), n)}
		}
	}
	return nil
}

func pathOrRoot(p Pointer) string {
	if len(p) == 0 {
		return "/"
	}
	return p.String()
}

// asInstance is v as the validator reads it (documents keep numbers as
// json.Number, which it accepts).
func asInstance(v any) any {
	if d, ok := v.(Document); ok {
		return map[string]any(d)
	}
	return v
}

// violation names the path and the rule that failed.
func violation(at Pointer, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return errcode.New(errcode.Invalid, "schema: %s: %v", at, err)
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	path := at.String()
	if len(leaf.InstanceLocation) > 0 {
		path += Pointer(leaf.InstanceLocation).String()
	}
	if path == "" {
		path = "/"
	}
	// The rule: where it sits in the schema, and its keyword.
	rule := leaf.SchemaURL
	if i := strings.Index(rule, "#"); i >= 0 {
		rule = rule[i:]
	}
	if kw := strings.Join(leaf.ErrorKind.KeywordPath(), "/"); kw != "" {
		rule += "/" + kw
	}
	return errcode.New(errcode.Invalid, "schema: %s breaks rule %q: %s", path, rule, leafMessage(leaf))
}

var english = message.NewPrinter(language.English)

func leafMessage(ve *jsonschema.ValidationError) string { return ve.ErrorKind.LocalizedString(english) }

// collectRoles records the paths whose subschema carries x-collab-role.
func (s *Schema) collectRoles(node any, path []string, depth int) {
	if depth > 32 {
		return
	}
	m, _ := s.resolve(node, "")
	if m == nil {
		return
	}
	if role, ok := m["x-collab-role"].(string); ok && role != "" {
		s.roles = append(s.roles, roleRule{path: append([]string(nil), path...), role: role})
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for k, v := range props {
			s.collectRoles(v, append(path, k), depth+1)
		}
	}
	if items, ok := m["items"]; ok {
		s.collectRoles(items, append(path, "*"), depth+1)
	}
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		s.collectRoles(ap, append(path, "*"), depth+1)
	}
}

// roleFor returns the strongest role an op at p needs: a marked path at,
// above or below p (replacing /pricing rewrites /pricing/price).
func (s *Schema) roleFor(p Pointer) string {
	need := ""
	for _, r := range s.roles {
		n := min(len(r.path), len(p))
		match := true
		for i := 0; i < n; i++ {
			if r.path[i] != "*" && r.path[i] != p[i] {
				match = false
				break
			}
		}
		if match && (need == "" || roleAtLeast(r.role, need)) {
			need = r.role
		}
	}
	return need
}

var roleRank = map[string]int{"viewer": 1, "editor": 2, "admin": 3}

func roleAtLeast(have, need string) bool { return roleRank[have] >= roleRank[need] }
