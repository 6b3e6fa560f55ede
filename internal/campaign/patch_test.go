package campaign

import (
	"encoding/json"
	"testing"

	"github.com/collab-dev/collab/internal/errcode"
)

func mustDoc(t *testing.T, s string) Document {
	t.Helper()
	d, err := ParseDocument([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func encode(t *testing.T, d Document) string {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApply(t *testing.T) {
	const base = `{"name":"Spring","list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":1}`
	cases := []struct {
		name    string
		ops     string
		want    string // document after; empty when an error is expected
		wantErr bool
	}{
		{"replace member", `[{"op":"replace","path":"/name","value":"Summer"}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Summer"}`, false},
		{"add new member", `[{"op":"add","path":"/tags","value":["a"]}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring","tags":["a"]}`, false},
		{"add replaces existing member", `[{"op":"add","path":"/n","value":2}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":2,"name":"Spring"}`, false},
		{"nested replace", `[{"op":"replace","path":"/msg/email/subject","value":"Yo"}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Yo"}},"n":1,"name":"Spring"}`, false},
		{"array insert", `[{"op":"add","path":"/list/1","value":9}]`, `{"list":[1,9,2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"array append", `[{"op":"add","path":"/list/-","value":4}]`, `{"list":[1,2,3,4],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"array end index", `[{"op":"add","path":"/list/3","value":4}]`, `{"list":[1,2,3,4],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"array remove", `[{"op":"remove","path":"/list/0"}]`, `{"list":[2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"array replace", `[{"op":"replace","path":"/list/2","value":"x"}]`, `{"list":[1,2,"x"],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"remove member", `[{"op":"remove","path":"/msg"}]`, `{"list":[1,2,3],"n":1,"name":"Spring"}`, false},
		{"test passes numerically", `[{"op":"test","path":"/n","value":1.0},{"op":"replace","path":"/n","value":5}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":5,"name":"Spring"}`, false},
		{"sequential ops see each other", `[{"op":"add","path":"/a","value":{}},{"op":"add","path":"/a/b","value":1}]`, `{"a":{"b":1},"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring"}`, false},
		{"escaped token", `[{"op":"add","path":"/x~1y~0z","value":true}]`, `{"list":[1,2,3],"msg":{"email":{"subject":"Hi"}},"n":1,"name":"Spring","x/y~z":true}`, false},
		{"failing test refuses the batch", `[{"op":"replace","path":"/name","value":"B"},{"op":"test","path":"/n","value":2}]`, "", true},
		{"replace missing", `[{"op":"replace","path":"/nope","value":1}]`, "", true},
		{"remove missing", `[{"op":"remove","path":"/msg/sms"}]`, "", true},
		{"missing parent", `[{"op":"add","path":"/a/b","value":1}]`, "", true},
		{"index out of range", `[{"op":"add","path":"/list/5","value":1}]`, "", true},
		{"leading zero index", `[{"op":"replace","path":"/list/01","value":1}]`, "", true},
		{"dash on replace", `[{"op":"replace","path":"/list/-","value":1}]`, "", true},
		{"scalar parent", `[{"op":"add","path":"/n/x","value":1}]`, "", true},
		{"later op fails, earlier undone", `[{"op":"remove","path":"/list/0"},{"op":"add","path":"/name","value":"Q"},{"op":"remove","path":"/zzz"}]`, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := mustDoc(t, base)
			ops, err := ParsePatch([]byte(tc.ops))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			before := encode(t, d)
			ch, err := d.Apply(ops)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want error, got none")
				}
				if errcode.Of(err) != errcode.Invalid {
					t.Fatalf("want bad_request, got %v", errcode.Of(err))
				}
				if got := encode(t, d); got != before {
					t.Fatalf("failed batch changed the document:\n got %s\nwant %s", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if got := encode(t, d); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// The size estimate tracks the real encoding.
			if got, want := len(before)+ch.SizeDelta, len(tc.want); got != want {
				t.Errorf("size estimate %d, real %d", got, want)
			}
			ch.Undo()
			if got := encode(t, d); got != before {
				t.Fatalf("undo: got %s want %s", got, before)
			}
		})
	}
}

func TestParsePatchRefuses(t *testing.T) {
	cases := map[string]string{
		"not an array":     `{"op":"add"}`,
		"empty":            `[]`,
		"move":             `[{"op":"move","from":"/a","path":"/b"}]`,
		"copy":             `[{"op":"copy","from":"/a","path":"/b"}]`,
		"unknown op":       `[{"op":"frobnicate","path":"/a"}]`,
		"missing op":       `[{"path":"/a","value":1}]`,
		"root":             `[{"op":"replace","path":"","value":{}}]`,
		"no leading slash": `[{"op":"add","path":"a","value":1}]`,
		"bad escape":       `[{"op":"add","path":"/a~2","value":1}]`,
		"missing value":    `[{"op":"add","path":"/a"}]`,
		"malformed":        `[{"op":"add",`,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePatch([]byte(raw))
			if err == nil || errcode.Of(err) != errcode.Invalid {
				t.Fatalf("want bad_request, got %v", err)
			}
		})
	}
}

func TestNullValueIsAValue(t *testing.T) {
	d := mustDoc(t, `{"a":1}`)
	ops, err := ParsePatch([]byte(`[{"op":"replace","path":"/a","value":null}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ops); err != nil {
		t.Fatal(err)
	}
	if got := encode(t, d); got != `{"a":null}` {
		t.Fatalf("got %s", got)
	}
}

func TestApplyDoesNotShareValues(t *testing.T) {
	a, b := mustDoc(t, `{}`), mustDoc(t, `{}`)
	ops, _ := ParsePatch([]byte(`[{"op":"add","path":"/o","value":{"k":1}}]`))
	a.Apply(ops)
	b.Apply(ops)
	a["o"].(map[string]any)["k"] = json.Number("2")
	if encode(t, b) != `{"o":{"k":1}}` {
		t.Fatal("documents share a value")
	}
}

func TestPointerRoundTrip(t *testing.T) {
	for _, s := range []string{"", "/a", "/a/b", "/a~1b/~0c", "/", "//x", "/0/-"} {
		p, err := ParsePointer(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if p.String() != s {
			t.Errorf("%q round-trips to %q", s, p.String())
		}
	}
}

func TestOverlaps(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"/name", "/name", true},
		{"/name", "/name/first", true},
		{"/name/first", "/name", true},
		{"/name", "/names", false},
		{"/a/b", "/a/c", false},
		{"/a~1b", "/a/b", false},
	}
	for _, tc := range cases {
		a, _ := ParsePointer(tc.a)
		b, _ := ParsePointer(tc.b)
		if got := Overlaps(a, b); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestConflictKey(t *testing.T) {
	d := mustDoc(t, `{"canvas":{"transitions":[{"from":"a","to":"b"}],"activities":{"a1":{"config":{"label":"x"}}}},"m":{"0":1}}`)
	cases := map[string]string{
		"/canvas/transitions/0/from":         "/canvas/transitions",
		"/canvas/transitions/-":              "/canvas/transitions",
		"/canvas/transitions":                "/canvas/transitions",
		"/canvas/activities/a1/config/label": "/canvas/activities/a1/config/label",
		"/m/0":                               "/m/0", // an object member named "0" is not an array index
		"/new/path":                          "/new/path",
	}
	for in, want := range cases {
		p, _ := ParsePointer(in)
		if got := d.ConflictKey(p).String(); got != want {
			t.Errorf("ConflictKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	cases := []struct {
		from   Status
		action Action
		want   Status
		ok     bool
	}{
		{Draft, Launch, Active, true},
		{Active, Stop, Stopped, true},
		{Stopped, Resume, Active, true},
		{Draft, Archive, Archived, true},
		{Active, Archive, Archived, true},
		{Stopped, Archive, Archived, true},
		{Active, Launch, Active, false},
		{Draft, Stop, Draft, false},
		{Draft, Resume, Draft, false},
		{Active, Resume, Active, false},
		{Archived, Archive, Archived, false},
		{Archived, Launch, Archived, false},
	}
	for _, tc := range cases {
		got, err := tc.from.Next(tc.action)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s %s: got %s, %v", tc.action, tc.from, got, err)
		}
		if err != nil && errcode.Of(err) != errcode.Conflict {
			t.Errorf("%s %s: want conflict, got %v", tc.action, tc.from, errcode.Of(err))
		}
	}
	if Archived.Editable() || !Stopped.Editable() {
		t.Error("editable rules")
	}
}

func TestSizeDeltaEdges(t *testing.T) {
	for _, tc := range []struct{ doc, ops string }{
		{`{"a":{}}`, `[{"op":"add","path":"/a/x","value":1}]`},
		{`{"a":{"x":1}}`, `[{"op":"remove","path":"/a/x"}]`},
		{`{"a":[]}`, `[{"op":"add","path":"/a/-","value":"v"}]`},
		{`{"a":[1]}`, `[{"op":"remove","path":"/a/0"}]`},
		{`{"a":[1,2]}`, `[{"op":"remove","path":"/a/1"}]`},
		{`{"a":{"x":1,"y":2}}`, `[{"op":"remove","path":"/a/x"}]`},
		{`{"a":{"x":1}}`, `[{"op":"add","path":"/a/y","value":{"z":[1,2]}}]`},
	} {
		d := mustDoc(t, tc.doc)
		ops, _ := ParsePatch([]byte(tc.ops))
		before := len(encode(t, d))
		ch, err := d.Apply(ops)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := before+ch.SizeDelta, len(encode(t, d)); got != want {
			t.Errorf("%s %s: estimate %d, real %d", tc.doc, tc.ops, got, want)
		}
	}
}

// The decoder-free path takes the scalars edits carry, and leaves the rest
// to the decoder (which refuses what is not one JSON value).
func TestDecodeScalar(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want any
		ok   bool
	}{
		{`"Spring sale"`, "Spring sale", true},
		{`""`, "", true},
		{`"é"`, "é", true},
		{`42`, json.Number("42"), true},
		{`-1.5e+3`, json.Number("-1.5e+3"), true},
		{`true`, true, true},
		{`null`, nil, true},
		{`"a\"b"`, nil, false},   // escapes: the decoder
		{"\"\xff\"", nil, false}, // invalid UTF-8: the decoder's replacement
		{`01`, nil, false},
		{`1.`, nil, false},
		{` 5`, nil, false},
		{`{"a":1}`, nil, false},
	} {
		got, ok := decodeScalar([]byte(tc.raw))
		if ok != tc.ok || got != tc.want {
			t.Errorf("decodeScalar(%s) = %#v, %v; want %#v, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := decodeValue([]byte(`01`)); err == nil {
		t.Fatal("01 decoded")
	}
}

// The usual batch is copied into one allocation, not re-encoded through
// json.Marshal (which allocates several times).
func TestMarshalOpsCopiesTheUsualBatch(t *testing.T) {
	ops, err := ParsePatch([]byte(`[{"op":"replace","path":"/messages/email/subject","value":"Spring sale: 20% off"},{"op":"remove","path":"/tags/0"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = MarshalOps(ops) }); n > 1 {
		t.Fatalf("%v allocations per batch, want 1", n)
	}
}

// CheckDocument refuses exactly what ParseDocument refuses.
func TestCheckDocumentAgreesWithParseDocument(t *testing.T) {
	for _, raw := range []string{`{}`, ` {"a":[1,{"b":null}]} `, `[]`, `"x"`, `1`, `null`, ``, `{`, `{"a":1}x`, `{"a":1}{"b":2}`, "\t{\"a\":\"é\"}\n"} {
		_, perr := ParseDocument([]byte(raw))
		if cerr := CheckDocument([]byte(raw)); (cerr == nil) != (perr == nil) {
			t.Errorf("%q: CheckDocument %v, ParseDocument %v", raw, cerr, perr)
		}
	}
}

// BenchmarkApplyReplace is what a room does per edit, twice: a replace of
// one message field, checked, undone, then applied for good.
func BenchmarkApplyReplace(b *testing.B) {
	d, err := ParseDocument([]byte(`{"name":"Spring sale","messages":{"email":{"subject":"Hello there","body":"Dear customer, our sale starts now."}}}`))
	if err != nil {
		b.Fatal(err)
	}
	ops, err := ParsePatch([]byte(`[{"op":"replace","path":"/messages/email/subject","value":"Hello again, friend"}]`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ch, err := d.Apply(ops)
		if err != nil {
			b.Fatal(err)
		}
		ch.Undo()
	}
}
