// Package runner runs a campaign canvas's activities against the durable
// store: a run's counts, columns and sample, and Save audience. Package
// commands serves them as session commands; the scheduler runs canvases on
// their schedule.
package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/randid"
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

// Progress is told after each step of a run (one query each): a count, the
// sample, each upstream activity's count.
type Progress func(step, steps int)

// Run computes an activity's population (count, columns, a sample) and the
// count of every transition that feeds it. progress may be nil.
func (r *Runner) Run(ctx context.Context, ws string, c *audience.Canvas, activity string, progress Progress) (Result, error) {
	p := r.planner(ctx, ws, c)
	res := Result{Activity: activity, Transitions: []TransitionCount{}}
	if err := c.CheckFlow(activity); err != nil {
		return res, err
	}
	upstream := c.Upstream(activity)
	froms := map[string]bool{}
	for _, t := range upstream {
		froms[t.From] = true
	}
	step, steps := 0, 2+len(froms)
	done := func() {
		step++
		if progress != nil {
			progress(step, steps)
		}
	}
	node := activity
	if a, ok := c.Activities[activity]; ok && a.Type == audience.Split && !strings.Contains(activity, "#") {
		// A split shows each output's count; its own count is its input's.
		in := c.Inputs(activity)
		if len(in) != 1 {
			return res, errcode.New(errcode.Invalid, "%s takes one incoming activity and has %d: connect exactly one", c.Name(activity), len(in))
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
		steps += len(names)
		for _, n := range names {
			pop, err := p.Plan(activity + "#" + n)
			if err != nil {
				return res, err
			}
			if res.Outputs[n], err = r.store.CountPopulation(ctx, pop); err != nil {
				return res, err
			}
			done()
		}
	}
	pop, err := p.Plan(node)
	if err != nil {
		return res, err
	}
	if res.Count, err = r.store.CountPopulation(ctx, pop); err != nil {
		return res, err
	}
	done()
	if res.Sample, err = r.store.SamplePopulation(ctx, pop, SampleSize); err != nil {
		return res, err
	}
	done()
	res.Columns = append([]string{"id"}, pop.Columns...)
	res.Transitions, err = r.upstreamCounts(ctx, p, upstream, done)
	return res, err
}

// upstreamCounts counts the population on every transition given, each
// activity output once.
func (r *Runner) upstreamCounts(ctx context.Context, p *audience.Planner, upstream []audience.Transition, done func()) ([]TransitionCount, error) {
	out := []TransitionCount{}
	counted := map[string]int64{}
	for _, t := range upstream {
		n, ok := counted[t.From]
		if !ok {
			from, err := p.Plan(t.From)
			if err != nil {
				return out, err
			}
			if n, err = r.store.CountPopulation(ctx, from); err != nil {
				return out, err
			}
			counted[t.From] = n
			if done != nil {
				done()
			}
		}
		out = append(out, TransitionCount{From: t.From, To: t.To, Count: n})
	}
	return out, nil
}

// Upstream counts every transition that feeds an activity: what a Save
// audience shows along its arrows.
func (r *Runner) Upstream(ctx context.Context, ws string, c *audience.Canvas, activity string) ([]TransitionCount, error) {
	return r.upstreamCounts(ctx, r.planner(ctx, ws, c), c.Upstream(activity), nil)
}

// Save runs a save_audience activity: its incoming population creates or
// updates the audience its configuration names.
func (r *Runner) Save(ctx context.Context, ws, campaignID string, c *audience.Canvas, activity, by string) (store.AudienceSaved, error) {
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
		AudienceID: cfg.Audience, UpdateMode: cfg.UpdateMode, SourceCampaign: campaignID, Activity: activity, ActivityLabel: c.Name(activity), By: by, Population: pop, NewID: randid.New("a_")})
}
