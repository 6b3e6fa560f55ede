package campaign

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/errcode"
)

const testSchema = `{
  "$defs": {"money": {"type": "number", "minimum": 0}},
  "type": "object",
  "required": ["name"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 80},
    "messages": {"type": "object", "properties": {
      "email": {"type": "object", "required": ["subject"], "properties": {"subject": {"type": "string", "maxLength": 10}}}
    }},
    "pricing": {"type": "object", "x-collab-role": "admin", "properties": {"price": {"$ref": "#/$defs/money"}}},
    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
    "audience": {"oneOf": [{"type": "object", "required": ["rule"]}, {"type": "object", "required": ["list"]}]},
    "fields": {"type": "object", "additionalProperties": {"type": "integer"}}
  }
}`

func schemaEdit(t *testing.T, s *Schema, doc Document, role string, patch string) error {
	t.Helper()
	ops, err := ParsePatch(json.RawMessage(patch))
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	ch, err := doc.Apply(ops)
	if err != nil {
		t.Fatalf("apply %s: %v", patch, err)
	}
	defer ch.Undo()
	return s.Check(doc, ops, role)
}

func TestSchemaRefusesWithPathAndRule(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := ParseDocument([]byte(`{"name":"Spring","messages":{"email":{"subject":"Hi"}},"pricing":{"price":5},"tags":["a"],"audience":{"rule":{}},"fields":{"a":1}}`))
	cases := []struct {
		name, role, patch string
		code              errcode.Code
		want              []string // in the message
	}{
		{"valid name", "editor", `[{"op":"replace","path":"/name","value":"Summer"}]`, "", nil},
		{"name too long", "editor", `[{"op":"replace","path":"/name","value":"` + strings.Repeat("x", 81) + `"}]`, errcode.Invalid, []string{"/name", "maxLength"}},
		{"name removed (required)", "editor", `[{"op":"remove","path":"/name"}]`, errcode.Invalid, []string{"required"}},
		{"nested string too long", "editor", `[{"op":"replace","path":"/messages/email/subject","value":"far too long a subject"}]`, errcode.Invalid, []string{"/messages/email/subject", "maxLength"}},
		{"nested required removed", "editor", `[{"op":"remove","path":"/messages/email/subject"}]`, errcode.Invalid, []string{"/messages/email", "required"}},
		{"type through $ref", "admin", `[{"op":"replace","path":"/pricing/price","value":-1}]`, errcode.Invalid, []string{"/pricing/price", "minimum"}},
		{"array item type", "editor", `[{"op":"add","path":"/tags/-","value":7}]`, errcode.Invalid, []string{"/tags/1", "type"}},
		{"array too long", "editor", `[{"op":"add","path":"/tags/-","value":"b"},{"op":"add","path":"/tags/-","value":"c"}]`, errcode.Invalid, []string{"/tags", "maxItems"}},
		{"under a combinator: checked from it", "editor", `[{"op":"remove","path":"/audience/rule"}]`, errcode.Invalid, []string{"/audience", "oneOf"}},
		{"additionalProperties", "editor", `[{"op":"add","path":"/fields/b","value":"two"}]`, errcode.Invalid, []string{"/fields/b", "type"}},
		{"unconstrained path", "editor", `[{"op":"add","path":"/notes","value":{"any":"thing"}}]`, "", nil},
		{"role-marked path, editor", "editor", `[{"op":"replace","path":"/pricing/price","value":9}]`, errcode.Forbidden, []string{"/pricing/price", "admin"}},
		{"role-marked path, admin", "admin", `[{"op":"replace","path":"/pricing/price","value":9}]`, "", nil},
		{"replacing an ancestor of a marked path", "editor", `[{"op":"replace","path":"/pricing","value":{"price":1}}]`, errcode.Forbidden, []string{"admin"}},
		{"a test reads, never needs the role", "viewer", `[{"op":"test","path":"/pricing/price","value":5}]`, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := schemaEdit(t, s, doc, c.role, c.patch)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if errcode.Of(err) != c.code {
				t.Fatalf("want %s, got %v", c.code, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("message %q does not name %q", err, w)
				}
			}
		})
	}
	// Every case undid its edit: the document is as it was.
	if b, _ := doc.Marshal(); !strings.Contains(string(b), `"name":"Spring"`) {
		t.Fatalf("document changed: %s", b)
	}
}

func TestCompileSchemaRefuses(t *testing.T) {
	for _, raw := range []string{`not json`, `[1]`, `{"type":"nope"}`, `{"$ref":"#/missing"}`} {
		if _, err := CompileSchema([]byte(raw)); errcode.Of(err) != errcode.Invalid {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// An edit's check costs what it touches: one field replaced in a 1 KiB and
// in a 1 MiB document (the ratio is the target: at most 1.5).
func BenchmarkSchemaCheck(b *testing.B) {
	s, err := CompileSchema([]byte(testSchema))
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("doc=%dKiB", size>>10), func(b *testing.B) {
			fields := map[string]int{}
			for i := 0; len(fields)*20 < size; i++ {
				fields[fmt.Sprintf("field_%08d", i)] = i
			}
			raw, _ := json.Marshal(map[string]any{"name": "Spring", "fields": fields, "messages": map[string]any{"email": map[string]any{"subject": "Hi"}}})
			doc, err := ParseDocument(raw)
			if err != nil {
				b.Fatal(err)
			}
			ops, _ := ParsePatch(json.RawMessage(`[{"op":"replace","path":"/fields/field_00000001","value":42}]`))
			b.ReportMetric(float64(len(raw)), "doc-bytes")
			b.ResetTimer()
			for range b.N {
				ch, err := doc.Apply(ops)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Check(doc, ops, "editor"); err != nil {
					b.Fatal(err)
				}
				ch.Undo()
			}
		})
	}
}
