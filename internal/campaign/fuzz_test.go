package campaign

import (
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
