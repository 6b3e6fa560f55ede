package commands

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/store"
)

// Runner runs a canvas's activities; *runner.Runner implements it.
type Runner interface {
	Run(ctx context.Context, workspace string, c *audience.Canvas, activity string, progress runner.Progress) (runner.Result, error)
	Save(ctx context.Context, workspace, campaign string, c *audience.Canvas, activity, by string) (store.AudienceSaved, error)
	Upstream(ctx context.Context, workspace string, c *audience.Canvas, activity string) ([]runner.TransitionCount, error)
}

// AudienceStore lists and reads saved audiences; the durable store
// implements it.
type AudienceStore interface {
	Audiences(ctx context.Context, workspace, query string) ([]store.AudienceSummary, error)
	Audience(ctx context.Context, workspace, id string, offset, limit int) (*store.AudienceDetail, error)
	SaveActivityResult(ctx context.Context, workspace, campaign, activity, kind string, msg json.RawMessage) error
}

// Catalog answers the rule builder; *runner.Catalog implements it.
type Catalog interface {
	Attributes(ctx context.Context, ws string) (audience.Attributes, error)
	Count(ctx context.Context, ws string, r *audience.Rule) (runner.Count, error)
}

// Audiences is what the audience commands need.
type Audiences struct {
	Runner  Runner
	Store   AudienceStore
	Catalog Catalog
	Log     *slog.Logger

	hub     *session.Hub
	running sync.Map // session id NUL activity → the run's cancel
}

// countTimeout bounds a live count: the builder asks again as the rule
// changes, so a slow answer is worth less than a fresh one.
const countTimeout = 10 * time.Second

// runTimeout bounds one command; populations are computed in the database.
const runTimeout = 2 * time.Minute

// Register adds the audience commands to a hub: activity.run and
// audience.save (results go to every session on the campaign),
// audience.list and audience.get.
func (a *Audiences) Register(h *session.Hub) {
	a.hub = h
	h.Handle("activity.run", func(_ context.Context, s *session.Session, req *protocol.Request) error {
		room, err := s.Member(req)
		if err != nil {
			return err
		}
		c, err := canvasOf(room)
		if err != nil {
			return err
		}
		if req.Activity == "" {
			return errcode.New(errcode.Invalid, "activity.run needs an activity")
		}
		unsaved := room.Unsaved()
		key := s.ID() + "\x00" + req.Activity
		ctx, cancel := context.WithTimeout(s.Context(), runTimeout)
		if _, busy := a.running.LoadOrStore(key, cancel); busy {
			cancel()
			return errcode.New(errcode.Conflict, "%s is already running for this session", c.Name(req.Activity))
		}
		s.Go(func(context.Context) {
			defer a.running.Delete(key)
			defer cancel()
			res, err := a.Runner.Run(ctx, room.Workspace(), c, req.Activity, func(step, steps int) {
				// Without the ref: the run's reply is its result.
				s.Send(protocol.Encode(nil, protocol.ActivityProgress{Campaign: room.Campaign(), Activity: req.Activity, Step: step, Steps: steps}))
			})
			if errors.Is(ctx.Err(), context.Canceled) && s.Context().Err() == nil {
				s.Reply(req, protocol.ActivityCancelled{Campaign: room.Campaign(), Activity: req.Activity})
				return
			}
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			msg := protocol.ActivityResult{Campaign: room.Campaign(), Activity: res.Activity, Count: res.Count, Columns: res.Columns,
				Sample: res.Sample, Transitions: make([]protocol.Transition, len(res.Transitions)), Outputs: res.Outputs,
				By: s.Claims().User, ByName: s.Claims().Name, At: time.Now().UnixMilli(), Unsaved: unsaved}
			for i, t := range res.Transitions {
				msg.Transitions[i] = protocol.Transition{From: t.From, To: t.To, Count: t.Count}
			}
			s.Reply(req, msg)
			a.keep(ctx, room, req.Activity, "run", msg)
		})
		return nil
	})
	h.Handle("activity.cancel", func(_ context.Context, s *session.Session, req *protocol.Request) error {
		room, err := s.Member(req)
		if err != nil {
			return err
		}
		if v, ok := a.running.Load(s.ID() + "\x00" + req.Activity); ok {
			v.(context.CancelFunc)()
		}
		s.Reply(req, protocol.OK{Campaign: room.Campaign()})
		return nil
	})
	h.Handle("audience.save", func(_ context.Context, s *session.Session, req *protocol.Request) error {
		room, err := s.Member(req)
		if err != nil {
			return err
		}
		if !s.Claims().Role.CanEdit() {
			return errcode.New(errcode.Forbidden, "a %s cannot save audiences", s.Claims().Role)
		}
		c, err := canvasOf(room)
		if err != nil {
			return err
		}
		s.Go(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, runTimeout)
			defer cancel()
			res, err := a.Runner.Save(ctx, room.Workspace(), room.Campaign(), c, req.Activity, s.Claims().User)
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			msg := AudienceSavedMessage(room.Campaign(), req.Activity, res, s.Claims().User)
			msg.ByName = s.Claims().Name
			// Every arrow into the save shows what flowed along it.
			if ts, err := a.Runner.Upstream(ctx, room.Workspace(), c, req.Activity); err == nil {
				for _, t := range ts {
					msg.Transitions = append(msg.Transitions, protocol.Transition{From: t.From, To: t.To, Count: t.Count})
				}
			} else {
				a.Log.Warn("count a save's transitions", "campaign", room.Campaign(), "err", err)
			}
			s.Reply(req, msg)
			a.keep(ctx, room, req.Activity, "save", msg)
		})
		return nil
	})
	h.Handle("attributes.list", func(_ context.Context, s *session.Session, req *protocol.Request) error {
		s.Go(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, runTimeout)
			defer cancel()
			attrs, err := a.Catalog.Attributes(ctx, s.Claims().Workspace)
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			list, _ := json.Marshal(attrs.Attributes)
			s.Reply(req, protocol.AttributeList{Attributes: list, Profiles: attrs.Profiles, Sampled: attrs.Sampled})
		})
		return nil
	})
	h.Handle("audience.count", func(_ context.Context, s *session.Session, req *protocol.Request) error {
		r, err := audience.ParseRule(req.Rule)
		if err != nil {
			return err
		}
		s.Go(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, countTimeout)
			defer cancel()
			n, err := a.Catalog.Count(ctx, s.Claims().Workspace, r)
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			unknown, _ := json.Marshal(n.Unknown)
			s.Reply(req, protocol.RuleCount{Count: n.Count, Exact: n.Exact, Profiles: n.Profiles, Unknown: unknown})
		})
		return nil
	})
	h.Handle("audience.list", func(ctx context.Context, s *session.Session, req *protocol.Request) error {
		list, err := a.Store.Audiences(ctx, s.Claims().Workspace, req.Query)
		if err != nil {
			return err
		}
		msg := protocol.Audiences{Audiences: make([]protocol.AudienceSummary, len(list))}
		for i, d := range list {
			sizes, _ := json.Marshal(d.Sizes)
			msg.Audiences[i] = protocol.AudienceSummary{ID: d.ID, Label: d.Label, Dimension: d.Dimension, Kind: d.Kind, Count: d.Count, Updated: d.UpdatedAt,
				Campaign: d.Campaign, Activity: d.Activity, ActivityLabel: d.ActivityLabel, By: d.By, Sizes: sizes}
		}
		s.Reply(req, msg)
		return nil
	})
	h.Handle("audience.get", func(ctx context.Context, s *session.Session, req *protocol.Request) error {
		offset, limit, err := audience.Page(req.Offset, req.Limit)
		if err != nil {
			return err
		}
		d, err := a.Store.Audience(ctx, s.Claims().Workspace, req.Audience, offset, limit)
		if err != nil {
			return err
		}
		s.Reply(req, protocol.Audience{ID: d.ID, Label: d.Label, Dimension: d.Dimension, Kind: d.Kind,
			Columns: d.Columns, Rows: d.Rows, Count: d.Count, Updated: d.UpdatedAt})
		return nil
	})
}

// AudienceSavedMessage is the audience.saved message of a Save audience
// run by a user (or "schedule").
func AudienceSavedMessage(campaignID, activity string, res store.AudienceSaved, by string) protocol.AudienceSaved {
	return protocol.AudienceSaved{Campaign: campaignID, Activity: activity, Audience: res.Audience, Label: res.Label,
		Created: res.Created, Count: res.Count, Added: res.Added, Removed: res.Removed, By: by, At: time.Now().UnixMilli()}
}

// keep stores an activity's result with the campaign (a late joiner's
// snapshot carries it) and pushes it to every session of the campaign.
func (a *Audiences) keep(ctx context.Context, room *session.Room, activity, kind string, m protocol.Message) {
	msg := protocol.Encode(nil, m)
	if err := a.Store.SaveActivityResult(ctx, room.Workspace(), room.Campaign(), activity, kind, msg); err != nil {
		a.Log.Warn("keep an activity's result", "campaign", room.Campaign(), "activity", activity, "err", err)
	}
	if err := a.hub.Broadcast(ctx, room.Campaign(), msg); err != nil {
		a.Log.Warn("broadcast", "campaign", room.Campaign(), "type", m.MessageType(), "err", err)
	}
}

// canvasOf reads the working draft's canvas (unsaved edits included).
func canvasOf(room *session.Room) (*audience.Canvas, error) {
	var raw json.RawMessage
	var err error
	room.Read(func(doc campaign.Document, _ int64) {
		if v, ok := doc.Get(campaign.Pointer{"canvas"}); ok {
			raw, err = json.Marshal(v)
		}
	})
	if err != nil {
		return nil, err
	}
	return audience.ParseCanvas(raw)
}
