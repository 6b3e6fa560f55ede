package campaign

import (
	"encoding/json"
	"fmt"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/jsonscan"
)

// Op is one JSON Patch (RFC 6902) operation. collab supports add, replace,
// remove and test; move and copy are refused because they touch two paths,
// which the overlap rule has no answer for.
type Op struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`

	// Pointer is Path parsed; set by ParsePatch.
	Pointer Pointer `json:"-"`
}

// Writes reports whether the operation changes the document (test does not).
func (o Op) Writes() bool { return o.Op != "test" }

// ParsePatch decodes and checks a list of operations: supported op names,
// well-formed pointers, never the root, a value where one is needed. It does
// not look at any document; Apply does that.
func ParsePatch(raw []byte) ([]Op, error) {
	ops, ok := scanOps(raw)
	if !ok {
		if err := json.Unmarshal(raw, &ops); err != nil {
			return nil, errcode.New(errcode.Invalid, "ops: must be an array of JSON Patch operations: %v", err)
		}
	}
	if err := CheckOps(ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// scanOps reads the usual batch, an array of objects with plain op and path
// and any value, without reflection; false on anything else (see
// jsonscan), which encoding/json then reads. Values share raw's memory.
func scanOps(raw []byte) ([]Op, bool) {
	ops := make([]Op, 0, 1)
	ok := jsonscan.Array(raw, func(elem []byte) bool {
		var op Op
		var seen uint8
		if !jsonscan.Object(elem, func(key string, v []byte) bool {
			var bit uint8
			var ok bool
			switch key {
			case "op":
				bit = 1
				op.Op, ok = jsonscan.Plain(v)
			case "path":
				bit = 2
				op.Path, ok = jsonscan.Plain(v)
			case "value":
				bit = 4
				op.Value, ok = v, true
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			return true
		}) {
			return false
		}
		ops = append(ops, op)
		return true
	})
	return ops, ok
}

// MarshalOps encodes ops exactly as json.Marshal does (compact, with <, >
// and & escaped), which is what every receiver of an update gets. The usual
// batch (plain ASCII op and path, compact values without those characters)
// is copied, not re-encoded through reflection; anything else goes through
// json.Marshal.
func MarshalOps(ops []Op) ([]byte, error) {
	n := 2
	for _, op := range ops {
		n += 30 + len(op.Op) + len(op.Path) + len(op.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		if !jsonscan.Verbatim(op.Op) || !jsonscan.Verbatim(op.Path) || !compactAsIs(op.Value) {
			return json.Marshal(ops)
		}
		b = append(b, `{"op":"`...)
		b = append(b, op.Op...)
		b = append(b, `","path":"`...)
		b = append(b, op.Path...)
		b = append(b, '"')
		if len(op.Value) > 0 {
			b = append(b, `,"value":`...)
			b = append(b, op.Value...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// compactAsIs: the JSON text v is what json.Marshal writes for it as a
// RawMessage: no space outside strings, no HTML character, no U+2028 or
// U+2029 (which it escapes).
func compactAsIs(v []byte) bool {
	in := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			in = !in
		case '\\':
			i++ // an escaped character, never a quote that ends the string
		case ' ', '\t', '\n', '\r':
			if !in {
				return false
			}
		case '<', '>', '&':
			return false
		case 0xE2:
			if i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xA8 {
				return false
			}
		}
	}
	return true
}

// CheckOps validates ops decoded elsewhere and fills in their Pointer.
func CheckOps(ops []Op) error {
	if len(ops) == 0 {
		return errcode.New(errcode.Invalid, "ops: empty batch")
	}
	for i := range ops {
		op := &ops[i]
		switch op.Op {
		case "add", "replace", "test":
			if len(op.Value) == 0 {
				return errcode.New(errcode.Invalid, "ops[%d]: %s needs a value", i, op.Op)
			}
		case "remove":
		case "":
			return errcode.New(errcode.Invalid, "ops[%d]: missing op", i)
		default:
			return errcode.New(errcode.Invalid, "ops[%d]: unsupported op %q (add, replace, remove and test only)", i, op.Op)
		}
		p, err := ParsePointer(op.Path)
		if err != nil {
			return errcode.New(errcode.Invalid, "ops[%d]: %v", i, err)
		}
		if len(p) == 0 {
			return errcode.New(errcode.Invalid, "ops[%d]: the document root cannot be edited", i)
		}
		op.Pointer = p
	}
	return nil
}

// Change is what Apply did: enough to undo it and the document's size delta.
type Change struct {
	undo []undoStep
	// SizeDelta estimates how many bytes the compact encoding grew by.
	SizeDelta int
}

// Undo reverts the applied operations, newest first.
func (c *Change) Undo() {
	for i := len(c.undo) - 1; i >= 0; i-- {
		c.undo[i].revert()
	}
	c.undo = nil
	c.SizeDelta = 0
}

// Apply applies ops in order to d, all or nothing: when one fails, the ones
// before it are undone and the error names the failing operation. Values are
// decoded afresh, so d never shares memory with ops or with another document.
// The cost is proportional to the operations and the subtrees they replace,
// never to the whole document.
func (d Document) Apply(ops []Op) (*Change, error) {
	ch := &Change{}
	for i := range ops {
		if ops[i].Pointer == nil {
			p, err := ParsePointer(ops[i].Path)
			if err != nil {
				ch.Undo()
				return nil, errcode.New(errcode.Invalid, "ops[%d]: %v", i, err)
			}
			ops[i].Pointer = p
		}
		if err := d.applyOne(ch, &ops[i]); err != nil {
			ch.Undo()
			return nil, errcode.New(errcode.Invalid, "ops[%d] %s %s: %v", i, ops[i].Op, ops[i].Path, err)
		}
	}
	return ch, nil
}

// slot is a place in the document that holds a value: member k of object m,
// element i of array a, or (neither) the document's root, which is never
// replaced. Plain fields, not closures: every edit walks a path, and a
// closure per step was an allocation per step.
type slot struct {
	kind slotKind
	root map[string]any
	m    map[string]any
	k    string
	a    []any
	i    int
}

type slotKind uint8

const (
	rootSlot slotKind = iota
	memberSlot
	elementSlot
)

func (s slot) get() any {
	switch s.kind {
	case memberSlot:
		return s.m[s.k]
	case elementSlot:
		return s.a[s.i]
	}
	return s.root
}

func (s slot) set(v any) {
	switch s.kind {
	case memberSlot:
		s.m[s.k] = v
	case elementSlot:
		s.a[s.i] = v
	}
}

// undoStep reverts one applied operation: member k of m back to old (or
// deleted when it did not exist), or, for an array edit, the array at
// parent back to arr (arrays are copied on edit, so the old one is intact).
type undoStep struct {
	m       map[string]any
	k       string
	old     any
	existed bool
	array   bool
	parent  slot
	arr     []any
}

func (u *undoStep) revert() {
	switch {
	case u.array:
		u.parent.set(u.arr)
	case u.existed:
		u.m[u.k] = u.old
	default:
		delete(u.m, u.k)
	}
}

func (d Document) applyOne(ch *Change, op *Op) error {
	p := op.Pointer
	if len(p) == 0 {
		return fmt.Errorf("the document root cannot be edited")
	}
	var val any
	if op.Op != "remove" {
		v, err := decodeValue(op.Value)
		if err != nil {
			return fmt.Errorf("bad value: %v", err)
		}
		val = v
	}
	// Walk to the parent, remembering how to replace it in its own parent
	// (arrays are re-sliced, so a change must be written back).
	root := map[string]any(d)
	parent := slot{root: root}
	for depth, tok := range p[:len(p)-1] {
		cur := parent.get()
		switch c := cur.(type) {
		case map[string]any:
			if _, ok := c[tok]; !ok {
				return fmt.Errorf("path %s does not exist", p[:depth+1])
			}
			parent = slot{kind: memberSlot, m: c, k: tok}
		case []any:
			i, ok := arrayIndex(tok, len(c), false)
			if !ok {
				return fmt.Errorf("path %s does not exist", p[:depth+1])
			}
			parent = slot{kind: elementSlot, a: c, i: i}
		default:
			return fmt.Errorf("path %s is not an object or array", p[:depth])
		}
	}
	last := p[len(p)-1]
	switch c := parent.get().(type) {
	case map[string]any:
		old, exists := c[last]
		keySize := encodedSize(last) + 1 // "key":
		if len(c) > 1 || (len(c) == 1 && !exists) {
			keySize++ // and the comma between members
		}
		switch op.Op {
		case "test":
			if !exists {
				return fmt.Errorf("test failed: path does not exist")
			}
			if !jsonEqual(old, val) {
				return fmt.Errorf("test failed: value differs")
			}
			return nil
		case "replace", "remove":
			if !exists {
				return fmt.Errorf("path does not exist")
			}
		}
		if op.Op == "remove" {
			delete(c, last)
			ch.SizeDelta -= encodedSize(old) + keySize
		} else {
			c[last] = val
			ch.SizeDelta += len(op.Value)
			if exists {
				ch.SizeDelta -= encodedSize(old)
			} else {
				ch.SizeDelta += keySize
			}
		}
		ch.undo = append(ch.undo, undoStep{m: c, k: last, old: old, existed: exists})
		return nil
	case []any:
		i, ok := arrayIndex(last, len(c), op.Op == "add")
		if !ok {
			return fmt.Errorf("bad array index %q for an array of %d", last, len(c))
		}
		var next []any
		switch op.Op {
		case "test":
			if !jsonEqual(c[i], val) {
				return fmt.Errorf("test failed: value differs")
			}
			return nil
		case "add":
			next = make([]any, 0, len(c)+1)
			next = append(append(append(next, c[:i]...), val), c[i:]...)
			ch.SizeDelta += len(op.Value)
			if len(c) > 0 {
				ch.SizeDelta++ // comma
			}
		case "replace":
			next = append([]any(nil), c...)
			next[i] = val
			ch.SizeDelta += len(op.Value) - encodedSize(c[i])
		case "remove":
			next = make([]any, 0, len(c)-1)
			next = append(append(next, c[:i]...), c[i+1:]...)
			ch.SizeDelta -= encodedSize(c[i])
			if len(c) > 1 {
				ch.SizeDelta-- // comma
			}
		}
		parent.set(next)
		ch.undo = append(ch.undo, undoStep{array: true, parent: parent, arr: c})
		return nil
	default:
		return fmt.Errorf("parent of the path is not an object or array")
	}
}
