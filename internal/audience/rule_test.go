package audience

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/errcode"
)

func TestParseRuleRefuses(t *testing.T) {
	deep := strings.Repeat(`{"not":`, MaxRuleDepth-1) + `{"field":"a","op":"empty"}` + strings.Repeat(`}`, MaxRuleDepth-1) // 32 levels
	many := `{"any":[` + strings.TrimSuffix(strings.Repeat(`{"field":"a","op":"empty"},`, MaxRuleNodes), ",") + `]}`
	cases := []struct {
		name, rule, wantPath string
	}{
		{"not an object", `[1]`, "rule:"},
		{"unknown operator", `{"field":"a","op":"equals","value":1}`, "rule.op: unknown operator"},
		{"missing operator", `{"field":"a","value":1}`, "rule.op: missing"},
		{"unknown key", `{"field":"a","op":"eq","value":1,"extra":2}`, `unknown key "extra"`},
		{"missing field", `{"op":"eq","value":1}`, "rule.field"},
		{"quote in field", `{"field":"a\"b","op":"eq","value":1}`, "rule.field"},
		{"eq with a list", `{"field":"a","op":"eq","value":[1]}`, "rule.value"},
		{"in with a scalar", `{"field":"a","op":"in","value":"x"}`, "rule.value"},
		{"in with an object inside", `{"field":"a","op":"in","value":["x",{"y":1}]}`, "rule.value[1]"},
		{"gt with a string", `{"field":"a","op":"gt","value":"3"}`, "rule.value"},
		{"between reversed", `{"field":"a","op":"between","value":[5,1]}`, "rule.value"},
		{"between one value", `{"field":"a","op":"between","value":[5]}`, "rule.value"},
		{"empty with a value", `{"field":"a","op":"empty","value":1}`, "rule.value"},
		{"before with a bad date", `{"field":"a","op":"before","value":"yesterday"}`, "rule.value"},
		{"within_days zero", `{"field":"a","op":"within_days","value":0}`, "rule.value"},
		{"contains empty", `{"field":"a","op":"contains","value":""}`, "rule.value"},
		{"empty group", `{"all":[]}`, "rule.all"},
		{"group with extra key", `{"all":[{"field":"a","op":"empty"}],"field":"x"}`, "rule:"},
		{"bad node names its path", `{"all":[{"field":"a","op":"empty"},{"any":[{"field":"b","op":"nope"}]}]}`, "rule.all[1].any[0].op"},
		{"too deep", `{"not":` + deep + `}`, "deeper than"},
		{"too many nodes", many, "more than"},
		{"malformed", `{"field":`, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRule(json.RawMessage(tc.rule))
			if err == nil || errcode.Of(err) != errcode.Invalid || !strings.Contains(err.Error(), tc.wantPath) {
				t.Fatalf("want bad_request naming %q, got %v", tc.wantPath, err)
			}
		})
	}
	if _, err := ParseRule(json.RawMessage(deep)); err != nil {
		t.Fatalf("%d levels should be allowed: %v", MaxRuleDepth, err)
	}
}

func TestCompiledSQLCarriesNoInput(t *testing.T) {
	r, err := ParseRule(json.RawMessage(`{"all":[{"field":"x'); DROP TABLE profiles; --","op":"eq","value":"'; DELETE FROM audiences; --"},{"field":"y","op":"in","value":["a' OR 1=1"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Dialect{SQLite, Postgres} {
		q := NewQuery(d)
		text := q.Where(r, "p")
		for _, bad := range []string{"DROP", "DELETE", "OR 1=1", "x'"} {
			if strings.Contains(text, bad) {
				t.Fatalf("dialect %d: input reached the SQL text: %s", d, text)
			}
		}
		if len(q.Args()) < 3 {
			t.Fatalf("values not bound: %v", q.Args())
		}
	}
}

func TestDecoderLineErrors(t *testing.T) {
	d, _ := NewDecoder(strings.NewReader("{\"id\":\"a\"}\n\n{bad\n{\"id\":\"\"}\n{\"id\":\"b\",\"x\":1}\n"), "ndjson")
	var got []string
	for {
		p, err := d.Next()
		if err != nil && err.Error() == "EOF" {
			break
		}
		if err != nil {
			got = append(got, err.Error()[:6])
			continue
		}
		got = append(got, p.ID)
	}
	if strings.Join(got, ",") != "a,line 3,line 4,b" {
		t.Fatalf("got %v", got)
	}
	if _, err := NewDecoder(strings.NewReader("name,age\nx,1\n"), "csv"); err == nil {
		t.Fatal("csv without id accepted")
	}
}
