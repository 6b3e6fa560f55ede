// Package jsonscan reads the JSON a busy session sends most (flat objects
// with plain keys, an array of small objects) without reflection, checking
// every value it passes over as strictly as encoding/json does. It answers
// only what it is sure of: a caller that gets false (an escaped key, a
// nesting too deep, anything it does not read) decodes the text with
// encoding/json instead, so the result never differs from it. Values are
// returned as slices of the input, not copies. Verbatim is the same rule
// for the other direction: which strings encoding/json writes as they are.
package jsonscan

import (
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds the nesting Value follows. Deeper text is not refused, only
// left to encoding/json (whose own bound is 10,000).
const maxDepth = 64

func space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Value returns the end of the JSON value that starts at b[i] (no leading
// space), and false when there is no valid value there or it nests deeper
// than maxDepth.
func Value(b []byte, i int) (end int, ok bool) { return value(b, i, 0) }

func value(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return str(b, i)
	case c == '{':
		return object(b, i, depth, nil)
	case c == '[':
		return array(b, i, depth, nil)
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return i, false
}

// object returns the end of the object at b[i] == '{'. With fn, it calls fn
// with each member in order and refuses a key that is not plain (see Plain)
// or a member fn refuses.
func object(b []byte, i, depth int, fn func(key string, value []byte) bool) (int, bool) {
	if depth >= maxDepth {
		return i, false
	}
	i = space(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		end, ok := str(b, i)
		if !ok {
			return i, false
		}
		var key string
		if fn != nil {
			if key, ok = Plain(b[i:end]); !ok {
				return i, false
			}
		}
		if i = space(b, end); i >= len(b) || b[i] != ':' {
			return i, false
		}
		start := space(b, i+1)
		if i, ok = value(b, start, depth+1); !ok || fn != nil && !fn(key, b[start:i]) {
			return i, false
		}
		if i = space(b, i); i >= len(b) {
			return i, false
		}
		if b[i] == '}' {
			return i + 1, true
		}
		if b[i] != ',' {
			return i, false
		}
		i = space(b, i+1)
	}
}

// array returns the end of the array at b[i] == '['. With fn, it calls fn
// with each element in order and refuses one fn refuses.
func array(b []byte, i, depth int, fn func(elem []byte) bool) (int, bool) {
	if depth >= maxDepth {
		return i, false
	}
	i = space(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		end, ok := value(b, i, depth+1)
		if !ok || fn != nil && !fn(b[i:end]) {
			return end, false
		}
		if i = space(b, end); i >= len(b) {
			return i, false
		}
		if b[i] == ']' {
			return i + 1, true
		}
		if b[i] != ',' {
			return i, false
		}
		i = space(b, i+1)
	}
}

func literal(b []byte, i int, word string) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// str returns the end of the string at b[i] == '"'.
func str(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || !hex(b[i+1]) || !hex(b[i+2]) || !hex(b[i+3]) || !hex(b[i+4]) {
					return i, false
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func hex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number returns the end of the number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// Object calls fn with each member of the object that b holds (b is one
// object, with optional space around it), in order, the value as raw text.
// It returns false when b is not such an object, when a key is not plain
// (see Plain), or when fn returns false; fn may then have seen some members.
func Object(b []byte, fn func(key string, value []byte) bool) bool {
	i := space(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, ok := object(b, i, 0, fn)
	return ok && space(b, end) == len(b)
}

// Array calls fn with each element of the array that b holds, as raw text,
// as Object does for members.
func Array(b []byte, fn func(elem []byte) bool) bool {
	i := space(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	end, ok := array(b, i, 0, fn)
	return ok && space(b, end) == len(b)
}

// Plain returns the string a JSON string value holds when it has no escape
// and is valid UTF-8: exactly what encoding/json would decode. Any other
// value gives false.
func Plain(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	v = v[1 : len(v)-1]
	ascii := true
	for _, c := range v {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// Verbatim reports whether encoding/json writes s between quotes exactly as
// it is: printable ASCII without a quote, a backslash or one of the HTML
// characters it escapes (<, > and &). Encoders that write JSON by hand copy
// such a string and leave any other to encoding/json, which writes some of
// those as they are too (non-ASCII text): the rule is cheap, not exact.
func Verbatim(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Int returns the integer a JSON number value holds when it is written as
// one (no fraction, no exponent) and fits in an int64.
func Int(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	for i, c := range v {
		if !(c >= '0' && c <= '9' || c == '-' && i == 0) {
			return 0, false
		}
	}
	if end, ok := number(v, 0); !ok || end != len(v) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
