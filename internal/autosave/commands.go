package autosave

import (
	"context"
	"encoding/json"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/session"
)

// Staging keeps full-screen editor values per user; *draft.Buffer
// implements it.
type Staging interface {
	OpenEditor(ctx context.Context, campaign, user, path string, rev int64) (draft.Staged, error)
	Stage(ctx context.Context, campaign, user, path string, value json.RawMessage, rev int64) error
	StagedValue(ctx context.Context, campaign, user, path string) (draft.Staged, error)
	Unstage(ctx context.Context, campaign, user, path string) error
}

// Register adds autosave's session commands to the hub: save, publish and
// the full-screen editor's open, stage, done and cancel.
func (f *Flusher) Register(h *session.Hub, staging Staging, limits campaign.Limits) {
	c := &commands{f: f, staging: staging, limits: limits}
	h.Handle("save", c.save)
	h.Handle("publish", c.publish)
	h.Handle("editor.open", c.editorOpen)
	h.Handle("editor.stage", c.editorStage)
	h.Handle("editor.done", c.editorDone)
	h.Handle("editor.cancel", c.editorCancel)
}

type commands struct {
	f       *Flusher
	staging Staging
	limits  campaign.Limits
}

const saveTimeout = 30 * time.Second

func editorRoom(s *session.Session, req *session.Request) (*session.Room, error) {
	room, err := s.Member(req)
	if err != nil {
		return nil, err
	}
	if !s.Claims().Role.CanEdit() {
		return nil, errcode.New(errcode.Forbidden, "a %s cannot %s", s.Claims().Role, req.Type)
	}
	return room, nil
}

// save answers `saved` once the draft is durable. It runs beside the
// session's reader so that a slow store does not hold up its other traffic.
func (c *commands) save(_ context.Context, s *session.Session, req *session.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	s.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		res, err := c.f.Flush(ctx, room.Campaign(), campaign.TriggerManual, true)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		s.Reply(req, "saved", savedFields(res))
	})
	return nil
}

// publish saves the draft of an active campaign and makes it live.
func (c *commands) publish(_ context.Context, s *session.Session, req *session.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	if st := room.Status(); st != campaign.Active {
		return errcode.New(errcode.Conflict, "only an active campaign can publish its draft; this one is %s", st)
	}
	user := s.Claims().User
	s.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		res, err := c.f.Flush(ctx, room.Campaign(), campaign.TriggerPublish, true)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		v, err := c.f.store.Publish(ctx, room.Workspace(), room.Campaign(), user)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		s.Reply(req, "published", session.Msg{"campaign": room.Campaign(), "version": v, "rev": res.Rev})
		res.Version, res.At, res.Trigger = v, time.Now(), campaign.TriggerPublish
		if err := c.f.drafts.Publish(ctx, room.Campaign(), SavedMessage(res)); err != nil {
			c.f.log.Warn("announce publish", "campaign", room.Campaign(), "err", err)
		}
	})
	return nil
}

func editorPath(req *session.Request) (campaign.Pointer, error) {
	p, err := campaign.ParsePointer(req.Path)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errcode.New(errcode.Invalid, "path: the document root has no editor")
	}
	return p, nil
}

// editorOpen marks the path as being edited (presence shows it) and offers
// back what this user staged there earlier, even from a previous session.
func (c *commands) editorOpen(ctx context.Context, s *session.Session, req *session.Request) error {
	room, err := s.Member(req)
	if err != nil {
		return err
	}
	if _, err := editorPath(req); err != nil {
		return err
	}
	var rev int64
	room.Read(func(_ campaign.Document, r int64) { rev = r })
	staged, err := c.staging.OpenEditor(ctx, room.Campaign(), s.Claims().User, req.Path, rev)
	if err != nil {
		return err
	}
	if err := room.SetEditing(ctx, req.Path); err != nil {
		return err
	}
	reply := session.Msg{"campaign": room.Campaign(), "path": req.Path}
	if staged.Value != nil {
		reply["staged"] = staged.Value
	}
	s.Reply(req, "ok", reply)
	return nil
}

// editorStage keeps the value for this user only: not broadcast, not saved.
func (c *commands) editorStage(ctx context.Context, s *session.Session, req *session.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	if _, err := editorPath(req); err != nil {
		return err
	}
	if len(req.Value) == 0 {
		return errcode.New(errcode.Invalid, "editor.stage needs a value")
	}
	if !json.Valid(req.Value) {
		return errcode.New(errcode.Invalid, "value is not JSON")
	}
	if len(req.Value) > c.limits.MaxDocBytes {
		return errcode.New(errcode.TooLarge, "staged value over %d bytes", c.limits.MaxDocBytes)
	}
	var rev int64
	room.Read(func(_ campaign.Document, r int64) { rev = r })
	if err := c.staging.Stage(ctx, room.Campaign(), s.Claims().User, req.Path, req.Value, rev); err != nil {
		return err
	}
	s.Reply(req, "ok", session.Msg{"campaign": room.Campaign(), "path": req.Path})
	return nil
}

// editorDone turns the staged value into an ordinary edit of the draft,
// based on the rev at which the editor was opened (or the request's base),
// so first-writer-wins applies; then the draft is saved at once.
func (c *commands) editorDone(ctx context.Context, s *session.Session, req *session.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	p, err := editorPath(req)
	if err != nil {
		return err
	}
	user := s.Claims().User
	staged, err := c.staging.StagedValue(ctx, room.Campaign(), user, req.Path)
	if err != nil {
		return err
	}
	if staged.Value == nil {
		return errcode.New(errcode.Invalid, "nothing staged for %s", req.Path)
	}
	base := staged.OpenRev
	if req.Base != nil {
		base = *req.Base
	}
	op := "add"
	room.Read(func(doc campaign.Document, _ int64) {
		if _, ok := doc.Get(p); ok {
			op = "replace"
		}
	})
	ops := []campaign.Op{{Op: op, Path: req.Path, Value: staged.Value, Pointer: p}}
	accepted, err := room.Edit(ctx, req, ops, base, "")
	if err != nil || !accepted {
		return err // a refresh was sent on conflict; the staged value is kept
	}
	if err := c.staging.Unstage(ctx, room.Campaign(), user, req.Path); err != nil {
		c.f.log.Warn("unstage", "campaign", room.Campaign(), "err", err)
	}
	if err := room.SetEditing(ctx, ""); err != nil {
		c.f.log.Warn("presence", "campaign", room.Campaign(), "err", err)
	}
	s.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		if _, err := c.f.Flush(ctx, room.Campaign(), campaign.TriggerEditor, true); err != nil {
			c.f.log.Warn("save after editor done", "campaign", room.Campaign(), "err", err)
		}
	})
	return nil
}

func (c *commands) editorCancel(ctx context.Context, s *session.Session, req *session.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	if _, err := editorPath(req); err != nil {
		return err
	}
	if err := c.staging.Unstage(ctx, room.Campaign(), s.Claims().User, req.Path); err != nil {
		return err
	}
	if err := room.SetEditing(ctx, ""); err != nil {
		return err
	}
	s.Reply(req, "ok", session.Msg{"campaign": room.Campaign(), "path": req.Path})
	return nil
}
