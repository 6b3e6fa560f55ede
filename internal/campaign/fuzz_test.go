package campaign

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzPointer: parsing never panics, and a parsed pointer round-trips.
func FuzzPointer(f *testing.F) {
	for _, s := range []string{"", "/", "/a", "/a~1b/~0c", "//x", "/0/-", "a", "/~", "/~2", "/\u00e9/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePointer(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("%q round-trips to %q", s, p.String())
		}
		q, err := ParsePointer(p.String())
		if err != nil || len(q) != len(p) {
			t.Fatalf("re-parse of %q: %v", s, err)
		}
		if !Overlaps(p, q) || !p.HasPrefix(q) {
			t.Fatalf("a pointer must overlap itself: %q", s)
		}
	})
}

// FuzzApply: applying any patch to any document never panics; a failed
// batch leaves the document as it was, and a successful one can be undone.
func FuzzApply(f *testing.F) {
	f.Add(`{"a":{"b":[1,2,3]},"n":1}`, `[{"op":"add","path":"/a/b/1","value":9}]`)
	f.Add(`{"a":1}`, `[{"op":"remove","path":"/a"},{"op":"test","path":"/a","value":1}]`)
	f.Add(`{"x":[]}`, `[{"op":"add","path":"/x/-","value":{"y":null}},{"op":"replace","path":"/x/0/y","value":[1]}]`)
	f.Add(`{}`, `[{"op":"add","path":"/~1","value":"s"}]`)
	f.Fuzz(func(t *testing.T, docJSON, opsJSON string) {
		d, err := ParseDocument([]byte(docJSON))
		if err != nil {
			return
		}
		ops, err := ParsePatch([]byte(opsJSON))
		if err != nil {
			return
		}
		before, _ := d.Marshal()
		for _, op := range ops {
			_ = d.ConflictKey(op.Pointer)
		}
		ch, err := d.Apply(ops)
		after, _ := d.Marshal()
		if err != nil {
			if string(after) != string(before) {
				t.Fatalf("failed batch changed the document:\n%s\n%s", before, after)
			}
			return
		}
		if !json.Valid(after) {
			t.Fatalf("invalid result %s", after)
		}
		ch.Undo()
		if undone, _ := d.Marshal(); string(undone) != string(before) {
			t.Fatalf("undo:\n%s\n%s", before, undone)
		}
	})
}

// FuzzOverlaps: the overlap rule is symmetric, agrees with a token-by-token
// prefix check, and holds between every path and its conflict key (what the
// edit script compares), so two edits the rule says overlap always share a
// conflict key prefix.
func FuzzOverlaps(f *testing.F) {
	doc := `{"name":"x","tags":["a","b"],"messages":{"email":{"subject":"s"}},"list":[{"a":1}]}`
	for _, s := range [][2]string{{"/name", "/name"}, {"/name", "/names"}, {"/messages", "/messages/email/subject"},
		{"/tags/0", "/tags/1"}, {"/list/0/a", "/list/-"}, {"/a~1b", "/a/b"}, {"/", "/x"}} {
		f.Add(s[0], s[1], doc)
	}
	f.Fuzz(func(t *testing.T, a, b, raw string) {
		p, err1 := ParsePointer(a)
		q, err2 := ParsePointer(b)
		if err1 != nil || err2 != nil {
			return
		}
		if Overlaps(p, q) != Overlaps(q, p) {
			t.Fatalf("not symmetric: %q %q", a, b)
		}
		n := min(len(p), len(q))
		prefix := true
		for i := 0; i < n; i++ {
			if p[i] != q[i] {
				prefix = false
			}
		}
		if Overlaps(p, q) != prefix {
			t.Fatalf("Overlaps(%q, %q) = %v, token prefix says %v", a, b, Overlaps(p, q), prefix)
		}
		d, err := ParseDocument([]byte(raw))
		if err != nil {
			return
		}
		kp, kq := d.ConflictKey(p), d.ConflictKey(q)
		if !p.HasPrefix(kp) || !q.HasPrefix(kq) {
			t.Fatalf("a conflict key must be a prefix of its path: %q -> %q", a, kp.String())
		}
		if Overlaps(p, q) && !Overlaps(kp, kq) {
			t.Fatalf("%q and %q overlap but their conflict keys %q and %q do not", a, b, kp.String(), kq.String())
		}
	})
}

// FuzzDecodeScalar: the decoder-free path for scalar values decodes exactly
// what the JSON decoder does, and leaves to it whatever it cannot vouch for.
func FuzzDecodeScalar(f *testing.F) {
	for _, s := range []string{`"abc"`, `""`, `"é"`, `"a\"b"`, `"a\\b"`, "\"\x01\"", "\"\xff\"", `0`, `-0`, `01`, `1.`, `1.5e+10`, `-2E-3`, `1e`,
		`12345678901234567890123`, `true`, `false`, `null`, `nul`, ` 5`, `5 `, `5 6`, `"a" `, `{}`, `[]`, `-`, `.5`, `+1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := decodeScalar(raw)
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil || dec.More() {
			t.Fatalf("%q: the fast path took a value the decoder refuses (%v)", raw, err)
		}
		if fast != want {
			t.Fatalf("%q: fast path %#v, decoder %#v", raw, fast, want)
		}
	})
}

// FuzzEncodedSize: the encoder-free sizes of scalars are exactly the
// length json.Marshal writes, whatever the string holds.
func FuzzEncodedSize(f *testing.F) {
	for _, s := range []string{"abc", "", "é", `a"b`, `a\b`, "\x01", "\xff", "<a&b>", "\u2028", "~", "1.5e+10", "-0", "01", "1e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, json.Number(s)} {
			want := 0
			if b, err := json.Marshal(v); err == nil {
				want = len(b)
			}
			if got := encodedSize(v); got != want {
				t.Fatalf("%T %q: encodedSize %d, json.Marshal writes %d bytes", v, s, got, want)
			}
		}
	})
}

// FuzzScanOps: a batch the scanner reads is exactly what encoding/json reads.
func FuzzScanOps(f *testing.F) {
	for _, s := range []string{`[{"op":"add","path":"/a/b","value":{"c":[1,null]}}]`, `[{"op":"remove","path":"/x"},{"op":"test","path":"/y","value":null}]`,
		`[]`, `[{"op":"add","op":"remove","path":"/a"}]`, `[{"op":"add","path":"/\u00e9","value":1}]`, `[{"op":"move","from":"/a","path":"/b"}]`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := scanOps(raw)
		if !ok {
			return
		}
		var want []Op
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", raw, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d ops, encoding/json %d", raw, len(got), len(want))
		}
		for i := range got {
			if got[i].Op != want[i].Op || got[i].Path != want[i].Path || string(got[i].Value) != string(want[i].Value) {
				t.Fatalf("%q op %d:\nscanned  %+v\nencoding %+v", raw, i, got[i], want[i])
			}
		}
	})
}

func TestScanOpsReadsCommonBatches(t *testing.T) {
	for _, s := range []string{`[{"op":"replace","path":"/name","value":"Spring"}]`, `[{"op":"add","path":"/fields/w1","value":3},{"op":"remove","path":"/tags/0"}]`} {
		if _, ok := scanOps([]byte(s)); !ok {
			t.Errorf("left to encoding/json: %s", s)
		}
	}
}

// FuzzMarshalOps: MarshalOps writes exactly what json.Marshal writes.
func FuzzMarshalOps(f *testing.F) {
	for _, s := range []string{`[{"op":"add","path":"/a b","value":{"c": [1, "x y", "<b>"]}}]`, `[{"op":"remove","path":"/x"}]`,
		`[{"op":"replace","path":"/é","value":"\u2028 \u003c\u2029"}]`, `[{"op":"test","path":"/t","value":"a\"b\\"}]`, `[{"op":"add","path":"/&","value":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ops []Op
		if json.Unmarshal(raw, &ops) != nil {
			return
		}
		want, werr := json.Marshal(ops)
		got, err := MarshalOps(ops)
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Fatalf("%q:\nMarshalOps   %s (%v)\njson.Marshal %s (%v)", raw, got, err, want, werr)
		}
	})
}
