package api

import (
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/errcode"
)

// devLogin signs a token for whoever types a name. It is mounted only while
// the server runs on its development secret (COLLAB_JWT_SECRET unset), where
// anyone who can read the data dir can sign tokens anyway; in production the
// editor takes its token from the host application.
func (s *server) devLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	if err := DecodeJSON(w, r, 4<<10, &body); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	name := strings.TrimSpace(body.Name)
	user := devUserID(name)
	if user == "" || len(name) > 80 {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "name needs 1 to 80 characters with at least one letter or digit"))
		return
	}
	c := auth.Claims{User: user, Name: name, Workspace: s.DevWorkspace, Role: auth.Admin}
	tok, err := s.Signer.Sign(c, devTokenLife)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "user": user, "name": name, "workspace": c.Workspace, "role": c.Role,
		"expires": time.Now().Add(devTokenLife).UTC().Format(time.RFC3339)})
}

// devTokenLife is long enough for a working day, short enough that a leaked
// development token does not live for ever.
const devTokenLife = 12 * time.Hour

// devUserID makes a stable user id from a display name: "Ann Lee" → "ann-lee".
func devUserID(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
