// Package auth verifies and issues the HS256 JWTs that carry a user's
// identity, workspace and role, and holds the access rules that go with them
// (roles, the Origin allow-list for browser upgrades).
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collab-dev/collab/internal/errcode"
)

// Role is what a user may do in a workspace.
type Role string

const (
	Viewer Role = "viewer"
	Editor Role = "editor"
	Admin  Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Viewer, Editor, Admin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (viewer, editor or admin)", s)
}

// CanEdit reports whether the role may change content: edit, save, publish,
// save audiences and run lifecycle transitions.
func (r Role) CanEdit() bool { return r == Editor || r == Admin }

// CanArchive reports whether the role may archive a campaign.
func (r Role) CanArchive() bool { return r == Admin }

// Claims is who a verified token speaks for.
type Claims struct {
	User      string
	Name      string
	Workspace string
	Role      Role
	Expires   time.Time // zero when the token has no exp
}

// Signer issues and verifies tokens with one HS256 secret.
type Signer struct {
	secret []byte
	now    func() time.Time
}

// NewSigner returns a Signer for secret, which must hold at least 16 bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("JWT secret must be at least 16 bytes")
	}
	return &Signer{secret: secret, now: time.Now}, nil
}

type tokenClaims struct {
	Name      string `json:"name,omitempty"`
	Workspace string `json:"ws"`
	Role      string `json:"role"`
	jwt.RegisteredClaims
}

// Sign returns a token for c that expires after ttl (no exp when ttl is 0; a negative ttl makes an already expired token, for tests).
func (s *Signer) Sign(c Claims, ttl time.Duration) (string, error) {
	now := s.now()
	tc := tokenClaims{Name: c.Name, Workspace: c.Workspace, Role: string(c.Role),
		RegisteredClaims: jwt.RegisteredClaims{Subject: c.User, IssuedAt: jwt.NewNumericDate(now)}}
	if ttl != 0 {
		tc.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

// Verify checks the token's signature (HS256 only: alg none and every other
// algorithm are refused), its exp and nbf when present, and its required
// claims. Every failure is an errcode.Unauthorized error.
func (s *Signer) Verify(token string) (Claims, error) {
	var tc tokenClaims
	_, err := jwt.ParseWithClaims(token, &tc, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(s.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return Claims{}, errcode.New(errcode.Unauthorized, "invalid token: %v", err)
	}
	role, err := ParseRole(tc.Role)
	if err != nil {
		return Claims{}, errcode.New(errcode.Unauthorized, "invalid token: %v", err)
	}
	if tc.Subject == "" || tc.Workspace == "" {
		return Claims{}, errcode.New(errcode.Unauthorized, "invalid token: sub and ws are required")
	}
	c := Claims{User: tc.Subject, Name: tc.Name, Workspace: tc.Workspace, Role: role}
	if tc.ExpiresAt != nil {
		c.Expires = tc.ExpiresAt.Time
	}
	if c.Name == "" {
		c.Name = c.User
	}
	return c, nil
}

// BearerToken returns the token of an "Authorization: Bearer" header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

type ctxKey struct{}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claims set by WithClaims.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(Claims)
	return c, ok
}

// Origins is the Origin allow-list for browser requests.
type Origins struct {
	allowed map[string]bool
}

// ParseOrigins parses a comma-separated list of origins such as
// "https://app.example.com,http://localhost:3000".
func ParseOrigins(list string) (Origins, error) {
	o := Origins{allowed: map[string]bool{}}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return Origins{}, fmt.Errorf("origin %q: want scheme://host[:port]", s)
		}
		o.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return o, nil
}

// Allowed reports whether r may proceed: a request without Origin is not a
// browser and is allowed; with one, it must be the server's own (the
// request's Host) or listed.
func (o Origins) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return o.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}
