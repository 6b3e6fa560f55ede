package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`"a"`, true}, {`"a\"b\\\/\b\f\n\r\t\u00e9"`, true}, {`""`, true}, {`"é"`, true},
		{`"a`, false}, {`"a\x"`, false}, {`"\u12"`, false}, {`"\u12g4"`, false}, {"\"a\x01\"", false},
		{`0`, true}, {`-0`, true}, {`12`, true}, {`-1.5e+10`, true}, {`1E3`, true}, {`0.25`, true},
		{`01`, false}, {`-`, false}, {`1.`, false}, {`.5`, false}, {`1e`, false}, {`1e+`, false}, {`+1`, false},
		{`true`, true}, {`false`, true}, {`null`, true}, {`tru`, false}, {`nul`, false}, {`True`, false},
		{`[]`, true}, {`[ 1 , "a" , [ ] , { } ]`, true}, {`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false}, {`[`, false},
		{`{}`, true}, {`{ "a" : 1 , "b" : { "c" : [ null ] } }`, true}, {`{"a":1,}`, false}, {`{"a"}`, false},
		{`{a:1}`, false}, {`{"a":1 "b":2}`, false}, {`{"a" 1}`, false}, {`{`, false},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false}, // valid, but left to encoding/json
	} {
		end, ok := Value([]byte(tc.in), 0)
		if got := ok && end == len(tc.in); got != tc.ok {
			t.Errorf("Value(%s) = %d, %v; want whole value %v", tc.in, end, ok, tc.ok)
		}
	}
}

func TestObject(t *testing.T) {
	type member struct{ k, v string }
	for _, tc := range []struct {
		in   string
		want []member
		ok   bool
	}{
		{`{}`, nil, true},
		{` { "type" : "edit" , "ops" : [ {"op":"add"} ] , "n" : -1 } `, []member{{"type", `"edit"`}, {"ops", `[ {"op":"add"} ]`}, {"n", `-1`}}, true},
		{`{"a":1}x`, nil, false},
		{`{"a":1}{"b":2}`, nil, false},
		{`{"t\u0079pe":"x"}`, nil, false}, // escaped key: left to encoding/json
		{`{"a":}`, nil, false},
		{`[1]`, nil, false},
		{``, nil, false},
	} {
		var got []member
		ok := Object([]byte(tc.in), func(k string, v []byte) bool {
			got = append(got, member{k, string(v)})
			return true
		})
		if ok != tc.ok || ok && len(got) != len(tc.want) {
			t.Errorf("Object(%s) = %v %v, want %v %v", tc.in, ok, got, tc.ok, tc.want)
			continue
		}
		for i := range got {
			if ok && got[i] != tc.want[i] {
				t.Errorf("Object(%s) member %d = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
	if Object([]byte(`{"a":1,"b":2}`), func(k string, _ []byte) bool { return k != "b" }) {
		t.Error("Object went on after fn refused a member")
	}
}

func TestArray(t *testing.T) {
	var got []string
	if !Array([]byte(` [ 1 , {"a":[2]} ,"x" ] `), func(e []byte) bool { got = append(got, string(e)); return true }) {
		t.Fatal("refused a valid array")
	}
	if strings.Join(got, "|") != `1|{"a":[2]}|"x"` {
		t.Fatalf("elements %q", got)
	}
	for _, in := range []string{`[1,]`, `[1`, `{}`, `[1]]`, ``} {
		if Array([]byte(in), func([]byte) bool { return true }) {
			t.Errorf("Array(%s) accepted", in)
		}
	}
	if !Array([]byte(`[]`), func([]byte) bool { t.Error("fn called on an empty array"); return true }) {
		t.Error("refused []")
	}
}

func TestPlainAndInt(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{`"abc"`, "abc", true}, {`""`, "", true}, {`"é/x"`, "é/x", true},
		{`"a\nb"`, "", false}, {"\"\xff\"", "", false}, {`abc`, "", false}, {`"`, "", false}, {`1`, "", false},
	} {
		got, ok := Plain([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Plain(%s) = %q %v", tc.in, got, ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`0`, 0, true}, {`-12`, -12, true}, {`9223372036854775807`, 1<<63 - 1, true},
		{`9223372036854775808`, 0, false}, {`1.0`, 0, false}, {`1e2`, 0, false}, {`01`, 0, false}, {`-`, 0, false}, {`"1"`, 0, false},
	} {
		got, ok := Int([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Int(%s) = %d %v", tc.in, got, ok)
		}
	}
}

// FuzzValue: Value accepts exactly the text encoding/json calls valid, but
// for nesting deeper than it follows.
func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"x\u00e9"`, `-0.5e-3`, `[[[]]]`, `{"a":1,}`, `01`, "\"\x7f\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, ok := Value(b, 0)
		whole := ok && end == len(b)
		valid := json.Valid(b) && len(b) > 0 && space(b, 0) == 0 && space(bytes.TrimRight(b, " \t\r\n"), 0) == 0 && !bytes.ContainsAny(b[len(b)-1:], " \t\r\n")
		if whole && !json.Valid(b) {
			t.Fatalf("Value accepted invalid JSON %q", b)
		}
		if valid && !whole && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) <= maxDepth {
			t.Fatalf("Value refused valid JSON %q (end %d)", b, end)
		}
	})
}

// FuzzObject: whatever Object reads, encoding/json reads the same members.
func FuzzObject(f *testing.F) {
	for _, s := range []string{`{"type":"edit","ops":[{"op":"add","path":"/a","value":1}]}`, `{"a":1,"a":2}`, `{}`, ` {"x" : "y"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		vals := map[string]string{}
		if !Object(b, func(k string, v []byte) bool {
			vals[k] = string(v)
			return true
		}) {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("Object read %q, encoding/json refuses it: %v", b, err)
		}
		if len(want) != len(vals) {
			t.Fatalf("%q: %d members, encoding/json %d", b, len(vals), len(want))
		}
		for k, v := range want {
			if vals[k] != string(v) { // a repeated key: both keep the last
				t.Fatalf("%q: member %q = %s, encoding/json %s", b, k, vals[k], v)
			}
		}
	})
}

// Verbatim never holds for a string encoding/json would change, and on
// printable ASCII it holds exactly when encoding/json writes it as it is.
func TestVerbatimAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{"", "Spring sale: 20% off", "/messages/email/subject", "a<b", "é", "\u2028", "tab\there"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{'x', byte(c)}))
	}
	for _, s := range cases {
		b, err := json.Marshal(s)
		asIs := err == nil && string(b) == `"`+s+`"`
		if Verbatim(s) && !asIs {
			t.Errorf("Verbatim(%q), but encoding/json writes %s", s, b)
		}
		if len(s) == 2 && s[1] >= 0x20 && s[1] <= 0x7e && Verbatim(s) != asIs {
			t.Errorf("Verbatim(%q) = %v; encoding/json writes %s", s, Verbatim(s), b)
		}
	}
}
