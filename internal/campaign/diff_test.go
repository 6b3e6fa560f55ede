package campaign

import (
	"encoding/json"
	"testing"
)

func TestTopLevelDiff(t *testing.T) {
	for _, tc := range []struct{ from, to, ops string }{
		{`{"a":1,"b":{"x":1}}`, `{"a":1,"b":{"x":1}}`, `null`},
		{`{"a":1,"b":2}`, `{"a":1,"c":3}`, `[{"op":"remove","path":"/b"},{"op":"add","path":"/c","value":3}]`},
		{`{"a":{"x":[1,2]}}`, `{"a":{"x":[2]}}`, `[{"op":"replace","path":"/a","value":{"x":[2]}}]`},
		{`{"a/b":1}`, `{}`, `[{"op":"remove","path":"/a~1b"}]`},
	} {
		from, _ := ParseDocument(json.RawMessage(tc.from))
		to, _ := ParseDocument(json.RawMessage(tc.to))
		ops, keys := TopLevelDiff(from, to)
		got, _ := json.Marshal(ops)
		if string(got) != tc.ops || len(keys) != len(ops) {
			t.Errorf("%s -> %s: %s (keys %v), want %s", tc.from, tc.to, got, keys, tc.ops)
			continue
		}
		// Applying the ops turns from into to.
		if len(ops) > 0 {
			if _, err := from.Apply(ops); err != nil {
				t.Fatalf("apply: %v", err)
			}
		}
		a, _ := from.Marshal()
		b, _ := to.Marshal()
		if string(a) != string(b) {
			t.Errorf("%s -> %s: applied gives %s", tc.from, tc.to, a)
		}
	}
}
