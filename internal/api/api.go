// Package api is collab's HTTP surface: the JSON endpoints of the protocol,
// health and metrics, the WebSocket endpoint and the embedded editor, all
// routed in routes.go. Handlers decode, authorize and encode in one place
// each; the work is done by the store and the draft layers.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/people"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/store"
)

// StatusNotifier tells every node's sessions that a campaign's lifecycle
// changed; the draft buffer implements it.
type StatusNotifier interface {
	SetStatus(ctx context.Context, campaign, status string) error
}

// Restorer restores a history version as a new edit; autosave provides it.
type Restorer interface {
	Restore(ctx context.Context, workspace, id string, version int64, user, name string) (rev int64, err error)
}

// Saver flushes a campaign's draft at once and says which saved version
// holds it; autosave provides it.
type Saver interface {
	Save(ctx context.Context, workspace, id string, trigger campaign.Trigger) (version int64, err error)
}

// Feed announces changes to a workspace's campaign list to the sessions
// watching it, on every node; the session hub implements it.
type Feed interface {
	AnnounceCampaign(ctx context.Context, ev protocol.CampaignListed) error
}

// Catalog answers the rule builder (attributes, live counts) and forgets
// a workspace's attributes when its profiles change; the audience runner
// provides it.
type Catalog interface {
	Attributes(ctx context.Context, ws string) (audience.Attributes, error)
	Count(ctx context.Context, ws string, r *audience.Rule) (runner.Count, error)
	Forget(ws string)
}

// Checker is one readiness dependency.
type Checker struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps are what the API needs.
type Deps struct {
	Store    store.Store
	Signer   *auth.Signer
	Status   StatusNotifier
	Restorer Restorer
	// Saver saves the draft before an archive, so that no acknowledged edit
	// is left out of the archived campaign.
	Saver Saver
	// People records the names tokens carry (nil: not recorded).
	People   *people.Recorder
	Feed     Feed
	Catalog  Catalog
	Sessions http.Handler // GET /v1/ws
	Web      http.Handler // the editor, at /
	Ready    []Checker
	Limits   campaign.Limits
	Log      *slog.Logger
	// DevWorkspace, when set, mounts POST /v1/dev/login, which signs a
	// token into this workspace for any name. Only for the development secret.
	DevWorkspace string
	// Extra mounts more routes (autosave and audience endpoints).
	Extra func(r Router)
}

// Router is what Extra may add routes to.
type Router interface {
	Get(pattern string, h http.HandlerFunc)
	Post(pattern string, h http.HandlerFunc)
}

type server struct{ Deps }

// writeJSON encodes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// WriteError answers with the uniform error body and the code's status.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	code := errcode.Of(err)
	if code == errcode.Internal || code == errcode.Unavailable {
		log.Error("request failed", "err", err)
	}
	errcode.WriteHTTP(w, err)
}

// DecodeJSON reads a JSON body of at most limit bytes into v, refusing
// text that is not UTF-8 (it would be stored and sent to browsers as is),
// unknown fields and trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errcode.New(errcode.TooLarge, "request body over %d bytes", limit)
		}
		return errcode.New(errcode.Invalid, "cannot read the request body: %v", err)
	}
	if !utf8.Valid(body) {
		return errcode.New(errcode.Invalid, "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errcode.New(errcode.Invalid, "request body is empty; send a JSON object")
		}
		return errcode.New(errcode.Invalid, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return errcode.New(errcode.Invalid, "malformed JSON body: one object expected")
	}
	return nil
}

// Claims returns the authenticated caller (set by the auth middleware).
func Claims(r *http.Request) auth.Claims {
	c, _ := auth.FromContext(r.Context())
	return c
}

func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := auth.BearerToken(r)
		if tok == "" {
			WriteError(w, s.Log, errcode.New(errcode.Unauthorized, "missing Authorization: Bearer token"))
			return
		}
		c, err := s.Signer.Verify(tok)
		if err != nil {
			WriteError(w, s.Log, err)
			return
		}
		s.People.Seen(r.Context(), c.Workspace, c.User, c.Name)
		next.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), c)))
	})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	status, checks := http.StatusOK, map[string]string{}
	for _, c := range s.Ready {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			status = http.StatusServiceUnavailable
			checks[c.Name] = err.Error()
		} else {
			checks[c.Name] = "ok"
		}
	}
	state := "ready"
	if status != http.StatusOK {
		state = "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": state, "checks": checks})
}

func requireEditor(c auth.Claims) error {
	if !c.Role.CanEdit() {
		return errcode.New(errcode.Forbidden, "a %s cannot do this; editor or admin role needed", c.Role)
	}
	return nil
}
