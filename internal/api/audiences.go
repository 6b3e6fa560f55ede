package api

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
)

// MaxImportBytes bounds one profile import's body (streamed, never held).
const MaxImportBytes = 4 << 30

// importProfiles streams NDJSON (application/x-ndjson, the default) or CSV
// (text/csv, with a header row) into the workspace's profiles, all or
// nothing: a bad line gets 400 naming it, and nothing is written.
func (s *server) importProfiles(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireEditor(c); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	format := "ndjson"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		switch mt {
		case "text/csv":
			format = "csv"
		case "application/x-ndjson", "application/ndjson", "application/json", "text/plain":
		default:
			WriteError(w, s.Log, errcode.New(errcode.Invalid, "Content-Type %s: send application/x-ndjson or text/csv", mt))
			return
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxImportBytes)
	dec, err := audience.NewDecoder(body, format)
	if err != nil {
		var le *audience.LineError
		if errors.As(err, &le) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": errcode.Invalid, "message": le.Error(), "lines": []*audience.LineError{le}}})
			return
		}
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "%v", err))
		return
	}
	rep, err := s.Store.ImportProfiles(r.Context(), c.Workspace, dec.Next)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		WriteError(w, s.Log, errcode.New(errcode.TooLarge, "import over %d bytes; split it", MaxImportBytes))
	case rep.BadLines > 0:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": errcode.Invalid, "message": errcode.Message(err),
			"bad_lines": rep.BadLines, "lines": rep.Errors}})
	case err != nil:
		WriteError(w, s.Log, err)
	default:
		if s.Catalog != nil {
			s.Catalog.Forget(c.Workspace) // the attribute list changed
		}
		writeJSON(w, http.StatusOK, rep)
	}
}

// exportAudience streams an audience as CSV (a header row: id and the
// audience's columns), flushed every thousand rows: a million members take
// a row's memory, and the download starts at once.
func (s *server) exportAudience(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	cw := csv.NewWriter(w)
	started := false
	record := []string{}
	n := 0
	err := s.Store.EachMember(r.Context(), Claims(r).Workspace, id, func(columns []string) error {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, id))
		started = true
		return cw.Write(columns)
	}, func(values []any) error {
		record = record[:0]
		for _, v := range values {
			record = append(record, csvCell(v))
		}
		if err := cw.Write(record); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			cw.Flush()
			return cw.Error()
		}
		return nil
	})
	if err != nil && !started {
		WriteError(w, s.Log, err)
		return
	}
	cw.Flush()
	if err != nil {
		// The header is out: all a client can be told is that the body ends
		// early, which it sees as a cut connection.
		s.Log.Warn("audience export cut short", "audience", id, "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// csvCell writes a member's value as a CSV cell: text as is, other JSON
// values as JSON, a missing one empty.
func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// attributes lists the workspace's profile attributes for the rule
// builder: types, fill rate and frequent values, over a bounded sample.
func (s *server) attributes(w http.ResponseWriter, r *http.Request) {
	if s.Catalog == nil {
		WriteError(w, s.Log, errcode.New(errcode.Unavailable, "attributes are not available on this node"))
		return
	}
	attrs, err := s.Catalog.Attributes(r.Context(), Claims(r).Workspace)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, attrs)
}

// countRule is the live count of a rule being edited.
func (s *server) countRule(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Rule json.RawMessage `json:"rule"`
	}
	err := DecodeJSON(w, r, 64<<10, &body)
	var rule *audience.Rule
	if err == nil {
		rule, err = audience.ParseRule(body.Rule)
	}
	if err == nil && s.Catalog == nil {
		err = errcode.New(errcode.Unavailable, "counts are not available on this node")
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	n, err := s.Catalog.Count(r.Context(), Claims(r).Workspace, rule)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *server) listAudiences(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Audiences(r.Context(), Claims(r).Workspace, r.URL.Query().Get("query"))
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audiences": list})
}

func (s *server) getAudience(w http.ResponseWriter, r *http.Request) {
	atoi := func(k string) (int, error) {
		v := r.URL.Query().Get(k)
		if v == "" {
			return 0, nil
		}
		return strconv.Atoi(v)
	}
	offset, err1 := atoi("offset")
	limit, err2 := atoi("limit")
	if err1 != nil || err2 != nil {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "offset and limit must be whole numbers"))
		return
	}
	offset, limit, err := audience.Page(offset, limit)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	d, err := s.Store.Audience(r.Context(), Claims(r).Workspace, chi.URLParam(r, "id"), offset, limit)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "label": d.Label, "dimension": d.Dimension, "kind": d.Kind,
		"columns": d.Columns, "rows": d.Rows, "count": d.Count, "updated": d.UpdatedAt, "source_campaign": d.SourceCampaign})
}
