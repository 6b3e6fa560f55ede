package api

import (
	"encoding/json"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
)

// maxSchemaBytes bounds a document schema.
const maxSchemaBytes = 256 << 10

// putSchema sets the workspace's document schema (admin): a JSON Schema,
// draft 2020-12, compiled before it is stored. Every node applies it to
// edits within a few seconds (docs/protocol.md).
func (s *server) putSchema(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "set the document schema"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSchemaBytes))
	if err != nil {
		WriteError(w, s.Log, errcode.New(errcode.TooLarge, "schema over %d bytes", maxSchemaBytes))
		return
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "schema: the body must be a JSON object, in UTF-8"))
		return
	}
	if _, err := campaign.CompileSchema(raw); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	if err := s.Store.SetDocumentSchema(r.Context(), c.Workspace, raw, c.User); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

func (s *server) getSchema(w http.ResponseWriter, r *http.Request) {
	raw, err := s.Store.DocumentSchema(r.Context(), Claims(r).Workspace)
	if err == nil && raw == nil {
		err = errcode.New(errcode.NotFound, "this workspace has no document schema")
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

func (s *server) deleteSchema(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireAdmin(c, "remove the document schema"); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	if err := s.Store.SetDocumentSchema(r.Context(), c.Workspace, nil, c.User); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
