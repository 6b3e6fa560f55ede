package campaign

import (
	"strconv"
	"strings"

	"github.com/collab-dev/collab/internal/errcode"
)

// Pointer is a parsed RFC 6901 JSON Pointer: its reference tokens, unescaped.
// The empty Pointer is the document root.
type Pointer []string

// ParsePointer parses s. Each token's "~1" becomes "/" and "~0" becomes "~";
// any other "~" sequence is an error, as the RFC requires.
func ParsePointer(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return nil, errcode.New(errcode.Invalid, "bad path %q: a JSON Pointer starts with /", s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if !strings.Contains(p, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] != '~' {
				b.WriteByte(p[j])
				continue
			}
			if j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1') {
				return nil, errcode.New(errcode.Invalid, "bad path %q: ~ must be followed by 0 or 1", s)
			}
			if p[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		parts[i] = b.String()
	}
	return Pointer(parts), nil
}

// String returns the pointer in its escaped text form.
func (p Pointer) String() string {
	if len(p) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range p {
		b.WriteByte('/')
		if strings.ContainsAny(t, "~/") {
			t = strings.ReplaceAll(t, "~", "~0")
			t = strings.ReplaceAll(t, "/", "~1")
		}
		b.WriteString(t)
	}
	return b.String()
}

// HasPrefix reports whether q is p or one of its ancestors, token by token.
func (p Pointer) HasPrefix(q Pointer) bool {
	if len(q) > len(p) {
		return false
	}
	for i := range q {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Overlaps reports whether two paths overlap under the protocol's rule: one
// equals the other or is its prefix, token by token (/name overlaps
// /name/first, not /names).
func Overlaps(a, b Pointer) bool { return a.HasPrefix(b) || b.HasPrefix(a) }

// arrayIndex parses an array index token: decimal digits without leading
// zeros, below n (or equal to n when allowEnd, for add).
func arrayIndex(tok string, n int, allowEnd bool) (int, bool) {
	if tok == "-" && allowEnd {
		return n, true
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i > n || (i == n && !allowEnd) {
		return 0, false
	}
	return i, true
}
