package auth

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collab-dev/collab/internal/errcode"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestVerify(t *testing.T) {
	s, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := s.Sign(Claims{User: "u1", Workspace: "w1", Role: Editor, Name: "Ann"}, time.Hour)
	expired, _ := s.Sign(Claims{User: "u1", Workspace: "w1", Role: Editor}, -time.Hour)
	other, _ := NewSigner([]byte("another-secret-another-secret!!"))
	forged, _ := other.Sign(Claims{User: "u1", Workspace: "w1", Role: Admin}, time.Hour)

	mk := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hs384 := mk(jwt.SigningMethodHS384, secret, jwt.MapClaims{"sub": "u", "ws": "w", "role": "admin"})
	none := mk(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u", "ws": "w", "role": "admin"})
	noWS := mk(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "role": "admin"})
	badRole := mk(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "ws": "w", "role": "owner"})
	notYet := mk(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "ws": "w", "role": "viewer", "nbf": time.Now().Add(time.Hour).Unix()})
	noExp := mk(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "ws": "w", "role": "viewer"})
	// A token whose header claims "none" but which carries an HS256 signature.
	parts := strings.Split(good, ".")
	algSwap := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"good", good, true},
		{"no exp is accepted", noExp, true},
		{"expired", expired, false},
		{"forged", forged, false},
		{"HS384", hs384, false},
		{"alg none", none, false},
		{"alg swapped to none", algSwap, false},
		{"missing ws", noWS, false},
		{"unknown role", badRole, false},
		{"not yet valid", notYet, false},
		{"garbage", "not.a.token", false},
		{"empty", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if errcode.Of(err) != errcode.Unauthorized {
				t.Fatalf("want unauthorized, got %v", errcode.Of(err))
			}
		})
	}
	c, _ := s.Verify(good)
	if c.User != "u1" || c.Workspace != "w1" || c.Role != Editor || c.Name != "Ann" {
		t.Fatalf("claims: %+v", c)
	}
}

func TestOrigins(t *testing.T) {
	o, err := ParseOrigins("https://app.example.com, http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		origin, host string
		want         bool
	}{
		{"", "collab.example.com", true},
		{"https://collab.example.com", "collab.example.com", true},
		{"https://app.example.com", "collab.example.com", true},
		{"http://localhost:3000", "collab.example.com", true},
		{"https://evil.example.com", "collab.example.com", false},
		{"http://localhost:3001", "collab.example.com", false},
		{"null", "collab.example.com", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/v1/ws", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := o.Allowed(r); got != tc.want {
			t.Errorf("origin %q host %q: %v", tc.origin, tc.host, got)
		}
	}
	if _, err := ParseOrigins("not a url"); err == nil {
		t.Error("bad origin accepted")
	}
}
