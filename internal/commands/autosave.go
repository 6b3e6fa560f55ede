package commands

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/collab-dev/collab/internal/autosave"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
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

// Flusher saves a campaign's draft at once; *autosave.Flusher implements it.
type Flusher interface {
	Flush(ctx context.Context, campaign string, trigger campaign.Trigger, wait bool) (autosave.Result, error)
}

// Publisher makes a campaign's saved draft its live version; the durable
// store implements it.
type Publisher interface {
	Publish(ctx context.Context, workspace, id, by string) (version int64, err error)
}

// Autosave is what autosave's commands need.
type Autosave struct {
	Flusher   Flusher
	Publisher Publisher
	Staging   Staging
	Limits    campaign.Limits
	Log       *slog.Logger
}

// Register adds autosave's session commands to the hub: save, publish and
// the full-screen editor's open, stage, done and cancel.
func (a *Autosave) Register(h *session.Hub) {
	c := &autosaveCommands{Autosave: a, hub: h}
	h.Handle("save", c.save)
	h.Handle("publish", c.publish)
	h.Handle("editor.open", c.editor(c.editorOpen, false))
	h.Handle("editor.stage", c.editor(c.editorStage, true))
	h.Handle("editor.done", c.editor(c.editorDone, true))
	h.Handle("editor.cancel", c.editor(c.editorCancel, true))
}

type autosaveCommands struct {
	*Autosave
	hub *session.Hub
}

const saveTimeout = 30 * time.Second

// editorCommand serves one editor.* command on its room and path.
type editorCommand func(ctx context.Context, s *session.Session, req *protocol.Request, room *session.Room, path campaign.Pointer) error

// editor wraps an editor.* command with what all four check first: the
// joined room (an editor's role when the command changes something) and a
// path below the document root.
func (c *autosaveCommands) editor(fn editorCommand, changes bool) session.Handler {
	return func(ctx context.Context, s *session.Session, req *protocol.Request) error {
		var room *session.Room
		var err error
		if changes {
			room, err = editorRoom(s, req)
		} else {
			room, err = s.Member(req)
		}
		if err != nil {
			return err
		}
		p, err := campaign.ParsePointer(req.Path)
		if err != nil {
			return err
		}
		if len(p) == 0 {
			return errcode.New(errcode.Invalid, "path: the document root has no editor")
		}
		return fn(ctx, s, req, room, p)
	}
}

// save answers `saved` once the draft is durable. It runs beside the
// session's reader so that a slow store does not hold up its other traffic.
func (c *autosaveCommands) save(_ context.Context, s *session.Session, req *protocol.Request) error {
	room, err := editorRoom(s, req)
	if err != nil {
		return err
	}
	s.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		res, err := c.Flusher.Flush(ctx, room.Campaign(), campaign.TriggerManual, true)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		s.Reply(req, res.Message())
	})
	return nil
}

// publish saves the draft of an active campaign and makes it live.
func (c *autosaveCommands) publish(_ context.Context, s *session.Session, req *protocol.Request) error {
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
		res, err := c.Flusher.Flush(ctx, room.Campaign(), campaign.TriggerPublish, true)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		v, err := c.Publisher.Publish(ctx, room.Workspace(), room.Campaign(), user)
		if err != nil {
			s.ReplyError(req, err)
			return
		}
		s.Reply(req, protocol.Published{Campaign: room.Campaign(), Version: v, Rev: res.Rev})
		res.Version, res.At, res.Trigger = v, time.Now(), campaign.TriggerPublish
		if err := c.hub.Broadcast(ctx, room.Campaign(), protocol.Encode(nil, res.Message())); err != nil {
			c.Log.Warn("announce publish", "campaign", room.Campaign(), "err", err)
		}
	})
	return nil
}

// editorOpen marks the path as being edited (presence shows it) and offers
// back what this user staged there earlier, even from a previous session.
func (c *autosaveCommands) editorOpen(ctx context.Context, s *session.Session, req *protocol.Request, room *session.Room, _ campaign.Pointer) error {
	var rev int64
	room.Read(func(_ campaign.Document, r int64) { rev = r })
	staged, err := c.Staging.OpenEditor(ctx, room.Campaign(), s.Claims().User, req.Path, rev)
	if err != nil {
		return err
	}
	if err := room.SetEditing(ctx, req.Path); err != nil {
		return err
	}
	s.Reply(req, protocol.OK{Campaign: room.Campaign(), Path: req.Path, Staged: staged.Value})
	return nil
}

// editorStage keeps the value for this user only: not broadcast, not saved.
func (c *autosaveCommands) editorStage(ctx context.Context, s *session.Session, req *protocol.Request, room *session.Room, _ campaign.Pointer) error {
	if len(req.Value) == 0 {
		return errcode.New(errcode.Invalid, "editor.stage needs a value")
	}
	if !json.Valid(req.Value) {
		return errcode.New(errcode.Invalid, "value is not JSON")
	}
	if len(req.Value) > c.Limits.MaxDocBytes {
		return errcode.New(errcode.TooLarge, "staged value over %d bytes", c.Limits.MaxDocBytes)
	}
	var rev int64
	room.Read(func(_ campaign.Document, r int64) { rev = r })
	if err := c.Staging.Stage(ctx, room.Campaign(), s.Claims().User, req.Path, req.Value, rev); err != nil {
		return err
	}
	s.Reply(req, protocol.OK{Campaign: room.Campaign(), Path: req.Path})
	return nil
}

// editorDone turns the staged value into an ordinary edit of the draft,
// based on the rev at which the editor was opened (or the request's base),
// so first-writer-wins applies; then the draft is saved at once.
func (c *autosaveCommands) editorDone(ctx context.Context, s *session.Session, req *protocol.Request, room *session.Room, p campaign.Pointer) error {
	user := s.Claims().User
	staged, err := c.Staging.StagedValue(ctx, room.Campaign(), user, req.Path)
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
	if err := c.Staging.Unstage(ctx, room.Campaign(), user, req.Path); err != nil {
		c.Log.Warn("unstage", "campaign", room.Campaign(), "err", err)
	}
	trigger := campaign.TriggerEditor
	if req.KeepOpen {
		// Saved "as a precaution" from inside the editor: it stays open, and
		// its next Done is based on this rev, so a teammate's change from
		// now on is still caught as a conflict.
		trigger = campaign.TriggerManual
		var rev int64
		room.Read(func(_ campaign.Document, r int64) { rev = r })
		if _, err := c.Staging.OpenEditor(ctx, room.Campaign(), user, req.Path, rev); err != nil {
			c.Log.Warn("reopen editor after save", "campaign", room.Campaign(), "err", err)
		}
	} else if err := room.SetEditing(ctx, ""); err != nil {
		c.Log.Warn("presence", "campaign", room.Campaign(), "err", err)
	}
	s.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		if _, err := c.Flusher.Flush(ctx, room.Campaign(), trigger, true); err != nil {
			c.Log.Warn("save after editor done", "campaign", room.Campaign(), "err", err)
		}
	})
	return nil
}

func (c *autosaveCommands) editorCancel(ctx context.Context, s *session.Session, req *protocol.Request, room *session.Room, _ campaign.Pointer) error {
	if err := c.Staging.Unstage(ctx, room.Campaign(), s.Claims().User, req.Path); err != nil {
		return err
	}
	if err := room.SetEditing(ctx, ""); err != nil {
		return err
	}
	s.Reply(req, protocol.OK{Campaign: room.Campaign(), Path: req.Path})
	return nil
}
