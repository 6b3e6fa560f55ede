// Package randid makes the random identifiers collab hands out: campaign
// and audience ids, session ids, epochs, lease tokens.
package randid

import (
	"crypto/rand"
	"encoding/base32"
)

var lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix followed by 16 random letters and digits (80 bits):
// safe in URLs, Redis keys and JSON without escaping, and within the
// campaign id alphabet.
func New(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b) // never fails (crypto/rand panics rather)
	return prefix + lower.EncodeToString(b)
}
