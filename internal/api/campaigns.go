package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/launch"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
)

type campaignView struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Status  campaign.Status `json:"status"`
	Version int64           `json:"version"`
	Draft   json.RawMessage `json:"draft,omitempty"`
	Live    json.RawMessage `json:"live"`
	Doc     json.RawMessage `json:"doc,omitempty"`
	Updated time.Time       `json:"updated"`
}

func (s *server) createCampaign(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	if err := requireEditor(c); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	var body struct {
		Name string          `json:"name"`
		Doc  json.RawMessage `json:"doc"`
	}
	if err := DecodeJSON(w, r, int64(s.Limits.MaxDocBytes)+64<<10, &body); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	body.Name = strings.TrimSpace(body.Name)
	if body.Name == "" || len(body.Name) > 200 {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "name is required (1 to 200 characters)"))
		return
	}
	if len(body.Doc) == 0 || string(body.Doc) == "null" {
		body.Doc, _ = json.Marshal(map[string]string{"name": body.Name})
	}
	if len(body.Doc) > s.Limits.MaxDocBytes {
		WriteError(w, s.Log, errcode.New(errcode.TooLarge, "doc is %d bytes, over the %d limit", len(body.Doc), s.Limits.MaxDocBytes))
		return
	}
	doc, err := campaign.ParseDocument(body.Doc)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	raw, _ := doc.Marshal()
	cp := &campaign.Campaign{ID: randid.New("c_"), Workspace: c.Workspace, Name: body.Name, Status: campaign.Draft, Draft: raw, UpdatedBy: c.User}
	if err := s.Store.CreateCampaign(r.Context(), cp); err != nil {
		WriteError(w, s.Log, err)
		return
	}
	s.announce(r.Context(), protocol.CampaignListed{Workspace: c.Workspace, Change: protocol.ListCreated, ID: cp.ID, Name: cp.Name, Status: string(cp.Status), By: c.User})
	writeJSON(w, http.StatusCreated, campaignView{ID: cp.ID, Name: cp.Name, Status: cp.Status, Version: cp.Version, Doc: raw, Updated: cp.UpdatedAt})
}

func (s *server) listCampaigns(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Campaigns(r.Context(), Claims(r).Workspace)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": list})
}

func (s *server) getCampaign(w http.ResponseWriter, r *http.Request) {
	cp, err := s.Store.Campaign(r.Context(), Claims(r).Workspace, chi.URLParam(r, "id"))
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	live := cp.Live
	if live == nil {
		live = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, campaignView{ID: cp.ID, Name: cp.Name, Status: cp.Status, Version: cp.Version, Draft: cp.Draft, Live: live, Updated: cp.UpdatedAt})
}

func (s *server) transition(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	a, err := campaign.ParseAction(chi.URLParam(r, "action"))
	if err == nil {
		err = requireEditor(c)
	}
	if err == nil && a == campaign.Archive && !c.Role.CanArchive() {
		err = errcode.New(errcode.Forbidden, "only an admin can archive a campaign")
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	if a == campaign.Launch && r.URL.Query().Get("force") != "true" {
		problems, err := s.launchProblems(r.Context(), c.Workspace, chi.URLParam(r, "id"))
		if err != nil {
			WriteError(w, s.Log, err)
			return
		}
		if len(problems) > 0 {
			writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{"code": errcode.Conflict,
				"message": fmt.Sprintf("the campaign is not ready to launch (%d problems); fix them, or launch with ?force=true", len(problems)), "problems": problems}})
			return
		}
	}
	cp, err := s.applyTransition(r.Context(), c.Workspace, chi.URLParam(r, "id"), a)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	live := cp.Live
	if live == nil {
		live = json.RawMessage("null")
	}
	s.announce(r.Context(), protocol.CampaignListed{Workspace: c.Workspace, Change: protocol.ListStatus, ID: cp.ID, Status: string(cp.Status), By: c.User})
	writeJSON(w, http.StatusOK, campaignView{ID: cp.ID, Name: cp.Name, Status: cp.Status, Version: cp.Version, Live: live, Updated: cp.UpdatedAt})
}

// applyTransition changes a campaign's status in the store and in Redis,
// where the edit script reads it. An archive goes to Redis first (no edit is
// accepted after it), then the draft is saved (no acknowledged edit is left
// out: the store refuses saves into an archived campaign), then the store;
// a failure after the first step puts the Redis status back. Other changes
// go to the store first; Redis only displays them, and is retried.
func (s *server) applyTransition(ctx context.Context, ws, id string, a campaign.Action) (*campaign.Campaign, error) {
	if s.Status == nil {
		return s.Store.Transition(ctx, ws, id, a)
	}
	if a != campaign.Archive {
		cp, err := s.Store.Transition(ctx, ws, id, a)
		if err != nil {
			return nil, err
		}
		if err := s.setStatus(ctx, id, cp.Status); err != nil {
			// Sessions learn it on their next join or reload.
			s.Log.Warn("announce status", "campaign", id, "status", cp.Status, "err", err)
		}
		return cp, nil
	}
	before, err := s.Store.Campaign(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	if _, err := before.Status.Next(a); err != nil {
		return nil, err
	}
	if err := s.setStatus(ctx, id, campaign.Archived); err != nil {
		return nil, fmt.Errorf("archive campaign %s: %w", id, err)
	}
	cp, err := func() (*campaign.Campaign, error) {
		if s.Saver != nil {
			if _, err := s.Saver.Save(ctx, ws, id, campaign.TriggerArchive); err != nil {
				return nil, fmt.Errorf("archive campaign %s: save the draft first: %w", id, err)
			}
		}
		return s.Store.Transition(ctx, ws, id, a)
	}()
	if err != nil {
		if rerr := s.setStatus(context.WithoutCancel(ctx), id, before.Status); rerr != nil {
			s.Log.Error("archive failed and the status in Redis could not be put back; the next open repairs it", "campaign", id, "err", rerr)
		}
		return nil, err
	}
	return cp, nil
}

// setStatus writes the status to Redis, retrying a few times over about two
// seconds.
func (s *server) setStatus(ctx context.Context, id string, status campaign.Status) error {
	var err error
	for delay := 100 * time.Millisecond; ; delay *= 3 {
		if err = s.Status.SetStatus(ctx, id, string(status)); err == nil || delay > time.Second {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
	}
}

func (s *server) versions(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Versions(r.Context(), Claims(r).Workspace, chi.URLParam(r, "id"))
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": list, "people": s.names(r.Context(), Claims(r).Workspace, list)})
}

// names maps every user a list of versions mentions to the name they go
// by, so that history reads "Ann" rather than "ann". It is best effort: a
// store error leaves the ids to show.
func (s *server) names(ctx context.Context, ws string, list []campaign.Version) map[string]string {
	var ids []string
	seen := map[string]bool{}
	for _, v := range list {
		for _, u := range append([]string{v.By}, v.Authors...) {
			if u != "" && !seen[u] {
				seen[u] = true
				ids = append(ids, u)
			}
		}
	}
	names, err := s.Store.PeopleNames(ctx, ws, ids)
	if err != nil {
		s.Log.Warn("read names for history", "err", err)
		return map[string]string{}
	}
	return names
}

// version answers one history entry with its document, for a preview and
// a diff against the current draft before a restore.
func (s *server) version(w http.ResponseWriter, r *http.Request) {
	v, err := VersionParam(r)
	var got *campaign.Version
	if err == nil {
		got, err = s.Store.Version(r.Context(), Claims(r).Workspace, chi.URLParam(r, "id"), v)
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": got, "people": s.names(r.Context(), Claims(r).Workspace, []campaign.Version{*got})})
}

// maxLabel bounds a version's label, in characters.
const maxLabel = 120

// labelVersion names a version (an empty label removes the name).
func (s *server) labelVersion(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	v, err := VersionParam(r)
	var body struct {
		Label *string `json:"label"`
	}
	if err == nil {
		err = requireEditor(c)
	}
	if err == nil {
		err = DecodeJSON(w, r, 4<<10, &body)
	}
	if err == nil && body.Label == nil {
		err = errcode.New(errcode.Invalid, "label: required (an empty string removes it)")
	}
	label := ""
	if err == nil {
		label = strings.TrimSpace(*body.Label)
		if n := utf8.RuneCountInString(label); n > maxLabel {
			err = errcode.New(errcode.Invalid, "label: %d characters, at most %d", n, maxLabel)
		}
	}
	if err == nil {
		err = s.Store.LabelVersion(r.Context(), c.Workspace, chi.URLParam(r, "id"), v, label)
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": chi.URLParam(r, "id"), "version": v, "label": label})
}

// announce tells the workspace's live campaign lists about a change. It is
// best effort: the change is made, and a list that missed it shows it on
// its next load.
func (s *server) announce(ctx context.Context, ev protocol.CampaignListed) {
	if s.Feed == nil {
		return
	}
	if err := s.Feed.AnnounceCampaign(ctx, ev); err != nil {
		s.Log.Warn("announce a campaign change", "campaign", ev.ID, "change", ev.Change, "err", err)
	}
}

// VersionParam parses the {v} URL parameter.
func VersionParam(r *http.Request) (int64, error) {
	v, err := strconv.ParseInt(chi.URLParam(r, "v"), 10, 64)
	if err != nil || v < 1 {
		return 0, errcode.New(errcode.Invalid, "bad version %q", chi.URLParam(r, "v"))
	}
	return v, nil
}

func (s *server) restore(w http.ResponseWriter, r *http.Request) {
	c := Claims(r)
	v, err := VersionParam(r)
	if err == nil {
		err = requireEditor(c)
	}
	if err == nil && s.Restorer == nil {
		err = errcode.New(errcode.Unavailable, "restore is not available on this node")
	}
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	rev, err := s.Restorer.Restore(r.Context(), c.Workspace, chi.URLParam(r, "id"), v, c.User, c.Name)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	// Saved at once, so that history shows the restore now. The restore
	// stands if this fails: the timer saves it later. Whichever save writes
	// it (this one, or a timer that got there first), the restore travels
	// in the draft log, so that save records it in the same write and every
	// session's history, reloading on the save's push, reads it.
	var saved int64
	if s.Saver != nil {
		if saved, err = s.Saver.Save(r.Context(), c.Workspace, chi.URLParam(r, "id"), campaign.TriggerRestore); err != nil {
			s.Log.Warn("save after restore", "campaign", chi.URLParam(r, "id"), "err", err)
		}
	}
	// A restore is not a room's commit: its name, if it brings one back, is
	// announced here.
	if old, err := s.Store.Version(r.Context(), c.Workspace, chi.URLParam(r, "id"), v); err == nil {
		var doc struct {
			Name *string `json:"name"`
		}
		if json.Unmarshal(old.Doc, &doc) == nil && doc.Name != nil {
			s.announce(r.Context(), protocol.CampaignListed{Workspace: c.Workspace, Change: protocol.ListRenamed, ID: chi.URLParam(r, "id"), Name: *doc.Name, Rev: rev, By: c.User})
		}
	}
	resp := map[string]any{"id": chi.URLParam(r, "id"), "restored": v, "rev": rev}
	if saved > 0 {
		resp["version"] = saved
	}
	writeJSON(w, http.StatusOK, resp)
}

// launchProblems saves the draft (what is typed is what launches) and runs
// the pre-launch checklist on it.
func (s *server) launchProblems(ctx context.Context, ws, id string) ([]launch.Problem, error) {
	cp, err := s.Store.Campaign(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	if cp.Status != campaign.Draft {
		return nil, nil // the transition answers: only a draft launches
	}
	if s.Saver != nil {
		if _, err := s.Saver.Save(ctx, ws, id, campaign.TriggerManual); err != nil {
			return nil, err
		}
	}
	if cp, err = s.Store.Campaign(ctx, ws, id); err != nil {
		return nil, err
	}
	doc, err := campaign.ParseDocument(cp.Draft)
	if err != nil {
		return nil, err
	}
	return launch.Check(doc), nil
}

// checks answers the pre-launch checklist of the saved draft.
func (s *server) checks(w http.ResponseWriter, r *http.Request) {
	cp, err := s.Store.Campaign(r.Context(), Claims(r).Workspace, chi.URLParam(r, "id"))
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	doc, err := campaign.ParseDocument(cp.Draft)
	if err != nil {
		WriteError(w, s.Log, err)
		return
	}
	problems := launch.Check(doc)
	if problems == nil {
		problems = []launch.Problem{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": len(problems) == 0, "problems": problems})
}
