package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/randid"
	"github.com/collab-dev/collab/internal/webhook"
)

// requireAdmin refuses a non-admin; what names the act ("manage webhooks").
func requireAdmin(c auth.Claims, what string) error {
	if c.Role != auth.Admin {
		return errcode.New(errcode.Forbidden, "only an admin can %s; this token is a %s's", what, c.Role)
	}
	return nil
}

// createWebhook registers an endpoint; its signing secret is in this
// answer only.
func (s *server) createWebhook(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "manage webhooks"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	var body struct {
		URL string `json:"url"`
	}
	if err := DecodeJSON(w, r, 8<<10, &body); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	if err := webhook.CheckURL(body.URL); err != nil {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "%v", err))
		return
	}
	secret := make([]byte, 24)
	rand.Read(secret)
	e := webhook.Endpoint{ID: randid.New("wh_"), Workspace: c.Workspace, URL: body.URL, Secret: "whsec_" + hex.EncodeToString(secret),
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), CreatedBy: c.User}
	if err := s.Store.CreateEndpoint(r.Context(), e); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": e.ID, "url": e.URL, "secret": e.Secret, "created_at": e.CreatedAt, "created_by": e.CreatedBy})
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "manage webhooks"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	list, err := s.Store.Endpoints(r.Context(), c.Workspace)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": list})
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "manage webhooks"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	if err := s.Store.DeleteEndpoint(r.Context(), c.Workspace, chi.URLParam(r, "id")); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// webhookDeliveries is an endpoint's delivery log: the newest deliveries
// (limit, default 50, at most 500), each with its attempts.
func (s *server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "manage webhooks"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			WriteError(w, s.Log, errcode.New(errcode.Invalid, "limit must be a whole number from 1 to 500"))
			return
		}
		limit = n
	}
	list, err := s.Store.Deliveries(r.Context(), c.Workspace, chi.URLParam(r, "id"), limit)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": list})
}
