package campaign

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/jsonscan"
)

// Document is a campaign's content: one JSON object, decoded with numbers
// kept as json.Number so that they survive a round trip exactly.
type Document map[string]any

// ParseDocument decodes raw, which must be a single JSON object.
func ParseDocument(raw []byte) (Document, error) {
	v, err := decodeValue(raw)
	if err != nil {
		return nil, errcode.New(errcode.Invalid, "document: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errcode.New(errcode.Invalid, "document: must be a JSON object")
	}
	return Document(m), nil
}

// CheckDocument refuses what ParseDocument refuses (anything but a JSON
// object) without decoding it: for a caller that only needs to know that raw
// is a readable document, such as a flush that will not write over one that
// is not.
func CheckDocument(raw []byte) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return errcode.New(errcode.Invalid, "document: must be a JSON object")
	}
	return nil
}

// Marshal encodes the document as compact JSON.
func (d Document) Marshal() ([]byte, error) { return json.Marshal(map[string]any(d)) }

// Get returns the value at p.
func (d Document) Get(p Pointer) (any, bool) {
	var cur any = map[string]any(d)
	for _, tok := range p {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := arrayIndex(tok, len(c), false)
			if !ok {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// ConflictKey returns the path that stands for p in overlap checks: p itself,
// or, when p reaches into an array, the path of the outermost such array,
// because the protocol treats an array as one field (any two operations
// inside the same array overlap). The key is computed against d's current
// shape.
func (d Document) ConflictKey(p Pointer) Pointer {
	var cur any = map[string]any(d)
	for i, tok := range p {
		switch c := cur.(type) {
		case []any:
			return p[:i]
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return p
			}
			cur = v
		default:
			return p
		}
	}
	return p
}

func decodeValue(raw []byte) (any, error) {
	if v, ok := decodeScalar(raw); ok {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errTrailing
	}
	return v, nil
}

// decodeScalar decodes the values most edits carry (a string without
// escapes, a number, true, false, null) exactly as decodeValue's decoder
// would, without one: its read buffer costs about 2 KiB per value, and an
// edit's value is decoded on every node that applies it. Anything else is
// not ok and takes the decoder.
func decodeScalar(raw []byte) (any, bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	case "null":
		return nil, true
	}
	// A string without escapes or invalid UTF-8 (which the decoder replaces).
	if s, ok := jsonscan.Plain(raw); ok {
		return s, true
	}
	if isNumber(raw) {
		return json.Number(raw), true
	}
	return nil, false
}

// isNumber reports whether b is exactly one JSON number (RFC 8259 section 6).
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

type trailingError struct{}

func (trailingError) Error() string { return "unexpected data after the JSON value" }

var errTrailing = trailingError{}

// encodedSize is the compact JSON length of v, used to keep a document's
// size up to date edit by edit without re-encoding the whole document.
// Every edit that replaces a value sizes the old one, so the scalars edits
// carry are sized without encoding them (json.Marshal boxes, allocates and
// escapes); anything else, and any string that needs escaping, is encoded.
func encodedSize(v any) int {
	switch x := v.(type) {
	case nil:
		return len("null")
	case bool:
		if x {
			return len("true")
		}
		return len("false")
	case string:
		if jsonscan.Verbatim(x) {
			return len(x) + 2
		}
	case json.Number:
		if isNumber([]byte(x)) {
			return len(x)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// jsonEqual compares two decoded JSON values; numbers compare by value, as
// RFC 6902 "test" requires (1 equals 1.0).
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && fx == fy
	default:
		return a == b
	}
}
