// Package runner runs a campaign canvas's activities against the durable
// store and serves them as session commands (activity.run, audience.save,
// audience.list, audience.get): results go to every session on the
// campaign.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/store"
)

// Runner runs activities.
type Runner struct {
	store store.Audiences
	log   *slog.Logger
}

// New returns a Runner on a store.
func New(st store.Audiences, log *slog.Logger) *Runner { return &Runner{store: st, log: log} }

// TransitionCount is a transition's population count in a run.
type TransitionCount struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int64  `json:"count"`
}

// Result is what running an activity found.
type Result struct {
	Activity    string            `json:"activity"`
	Count       int64             `json:"count"`
	Columns     []string          `json:"columns"`
	Sample      []map[string]any  `json:"sample"`
	Transitions []TransitionCount `json:"transitions"`
	Outputs     map[string]int64  `json:"outputs,omitempty"` // a split's outputs
}

// SampleSize is how many rows a run shows.
const SampleSize = 10

type lookup struct {
	ctx context.Context
	s   store.Audiences
}

func (l lookup) AudienceColumns(ws, id string) ([]string, error) {
	return l.s.AudienceColumns(l.ctx, ws, id)
}

func (r *Runner) planner(ctx context.Context, ws string, c *audience.Canvas) *audience.Planner {
	return &audience.Planner{Canvas: c, Workspace: ws, Dialect: r.store.Dialect(), Lookup: lookup{ctx, r.store}}
}

// Run computes an activity's population (count, columns, a sample) and the
// count of every transition that feeds it.
func (r *Runner) Run(ctx context.Context, ws string, c *audience.Canvas, activity string) (Result, error) {
	p := r.planner(ctx, ws, c)
	res := Result{Activity: activity, Transitions: []TransitionCount{}}
	if err := c.CheckFlow(activity); err != nil {
		return res, err
	}
	node := activity
	if a, ok := c.Activities[activity]; ok && a.Type == audience.Split && !strings.Contains(activity, "#") {
		// A split shows each output's count; its own count is its input's.
		in := c.Inputs(activity)
		if len(in) != 1 {
			return res, errcode.New(errcode.Invalid, "activity %s (split) needs exactly one incoming transition", activity)
		}
		node = in[0].From
		res.Outputs = map[string]int64{}
		var cfg struct {
			Subsets []struct {
				Name string `json:"name"`
			} `json:"subsets"`
			Complement bool `json:"complement"`
		}
		json.Unmarshal(a.Config, &cfg)
		names := []string{}
		for _, s := range cfg.Subsets {
			names = append(names, s.Name)
		}
		if cfg.Complement {
			names = append(names, "complement")
		}
		for _, n := range names {
			pop, err := p.Plan(activity + "#" + n)
			if err != nil {
				return res, err
			}
			if res.Outputs[n], err = r.store.CountPopulation(ctx, pop); err != nil {
				return res, err
			}
		}
	}
	pop, err := p.Plan(node)
	if err != nil {
		return res, err
	}
	if res.Count, err = r.store.CountPopulation(ctx, pop); err != nil {
		return res, err
	}
	if res.Sample, err = r.store.SamplePopulation(ctx, pop, SampleSize); err != nil {
		return res, err
	}
	res.Columns = append([]string{"id"}, pop.Columns...)
	counted := map[string]int64{}
	for _, t := range c.Upstream(activity) {
		n, ok := counted[t.From]
		if !ok {
			from, err := p.Plan(t.From)
			if err != nil {
				return res, err
			}
			if n, err = r.store.CountPopulation(ctx, from); err != nil {
				return res, err
			}
			counted[t.From] = n
		}
		res.Transitions = append(res.Transitions, TransitionCount{From: t.From, To: t.To, Count: n})
	}
	return res, nil
}

// Save runs a save_audience activity: its incoming population creates or
// updates the audience its configuration names.
func (r *Runner) Save(ctx context.Context, ws, campaignID string, c *audience.Canvas, activity string) (store.AudienceSaved, error) {
	cfg, err := c.SaveConfigOf(activity)
	if err != nil {
		return store.AudienceSaved{}, err
	}
	if err := c.CheckFlow(activity); err != nil {
		return store.AudienceSaved{}, err
	}
	pop, err := r.planner(ctx, ws, c).Plan(activity)
	if err != nil {
		return store.AudienceSaved{}, err
	}
	return r.store.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: cfg.Mode, Label: strings.TrimSpace(cfg.Label),
		AudienceID: cfg.Audience, UpdateMode: cfg.UpdateMode, SourceCampaign: campaignID, Population: pop, NewID: NewAudienceID()})
}

// NewAudienceID returns a random audience id.
func NewAudienceID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "a_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
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

// runTimeout bounds one command; populations are computed in the database.
const runTimeout = 2 * time.Minute

// Register adds the audience commands to a hub.
func (r *Runner) Register(h *session.Hub) {
	h.Handle("activity.run", func(_ context.Context, s *session.Session, req *session.Request) error {
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
		s.Go(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, runTimeout)
			defer cancel()
			res, err := r.Run(ctx, room.Workspace(), c, req.Activity)
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			fields := session.Msg{"campaign": room.Campaign(), "activity": res.Activity, "count": res.Count, "columns": res.Columns,
				"sample": res.Sample, "transitions": res.Transitions, "by": s.Claims().User}
			if res.Outputs != nil {
				fields["outputs"] = res.Outputs
			}
			s.Reply(req, "activity.result", fields)
			r.broadcast(ctx, h, room.Campaign(), "activity.result", fields)
		})
		return nil
	})
	h.Handle("audience.save", func(_ context.Context, s *session.Session, req *session.Request) error {
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
			res, err := r.Save(ctx, room.Workspace(), room.Campaign(), c, req.Activity)
			if err != nil {
				s.ReplyError(req, err)
				return
			}
			fields := session.Msg{"campaign": room.Campaign(), "activity": req.Activity, "audience": res.Audience, "label": res.Label,
				"created": res.Created, "count": res.Count, "added": res.Added, "removed": res.Removed, "by": s.Claims().User}
			s.Reply(req, "audience.saved", fields)
			r.broadcast(ctx, h, room.Campaign(), "audience.saved", fields)
		})
		return nil
	})
	h.Handle("audience.list", func(ctx context.Context, s *session.Session, req *session.Request) error {
		list, err := r.store.Audiences(ctx, s.Claims().Workspace, req.Query)
		if err != nil {
			return err
		}
		s.Reply(req, "audiences", session.Msg{"audiences": list})
		return nil
	})
	h.Handle("audience.get", func(ctx context.Context, s *session.Session, req *session.Request) error {
		offset, limit, err := audience.Page(req.Offset, req.Limit)
		if err != nil {
			return err
		}
		d, err := r.store.Audience(ctx, s.Claims().Workspace, req.Audience, offset, limit)
		if err != nil {
			return err
		}
		s.Reply(req, "audience", session.Msg{"id": d.ID, "label": d.Label, "dimension": d.Dimension, "kind": d.Kind,
			"columns": d.Columns, "rows": d.Rows, "count": d.Count, "updated": d.UpdatedAt})
		return nil
	})
}

func (r *Runner) broadcast(ctx context.Context, h *session.Hub, campaignID, typ string, fields session.Msg) {
	m := session.Msg{"type": typ}
	for k, v := range fields {
		m[k] = v
	}
	msg, _ := json.Marshal(m)
	if err := h.Broadcast(ctx, campaignID, msg); err != nil {
		r.log.Warn("broadcast", "campaign", campaignID, "type", typ, "err", err)
	}
}
