package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/store"
)

// Scheduler runs canvases whose /canvas/schedule is due, from the schedule
// rows saves keep (see store.Schedules). Every node runs one; each
// occurrence is claimed in the store with a compare-and-set, so
// exactly one node runs it. A node that dies during a run loses that
// occurrence (at most once), and the next one is already scheduled.
type Scheduler struct {
	Runner *Runner
	Store  interface {
		store.Schedules
		store.Audiences
		Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error)
	}
	// Saved is told of every audience a scheduled run saved (may be nil):
	// the server tells the campaign's sessions.
	Saved func(ctx context.Context, workspace, campaign, activity string, res store.AudienceSaved)
	Every time.Duration    // how often to look (30 s)
	Now   func() time.Time // the clock (time.Now)
	Log   *slog.Logger
}

// Run looks for due runs every Every until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	if s.Every <= 0 {
		s.Every = 30 * time.Second
	}
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Tick plans the schedules saves wrote since the last tick, then runs what
// is due. Both read only schedule rows, never drafts.
func (s *Scheduler) Tick(ctx context.Context) {
	now := s.now()
	if err := s.plan(ctx, now); err != nil && ctx.Err() == nil {
		s.Log.Warn("schedules: plan", "err", err)
	}
	due, err := s.Store.DueSchedules(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("schedules: due", "err", err)
		}
		return
	}
	for _, run := range due {
		won, err := s.Store.ClaimRun(ctx, run.Campaign, run.Due, nextRun(run.Spec, now))
		if err != nil || !won {
			continue // another node has it
		}
		s.runCanvas(ctx, run)
	}
}

// plan computes the next run of every schedule a save wrote or changed.
func (s *Scheduler) plan(ctx context.Context, now time.Time) error {
	list, err := s.Store.UnplannedSchedules(ctx)
	if err != nil {
		return err
	}
	for _, r := range list {
		if err := s.Store.PlanSchedule(ctx, r.Campaign, r.Spec, nextRun(r.Spec, now)); err != nil {
			return err
		}
	}
	return nil
}

// nextRun is a schedule spec's next occurrence after now, nil when it has
// none (or does not parse: it never runs).
func nextRun(spec string, now time.Time) *time.Time {
	sched, err := audience.ParseSchedule(json.RawMessage(spec))
	if err != nil {
		return nil
	}
	if n, ok := sched.Next(now); ok {
		return &n
	}
	return nil
}

// runCanvas runs every save_audience of the campaign's saved canvas.
func (s *Scheduler) runCanvas(ctx context.Context, run store.ScheduledRun) {
	c, err := s.Store.Campaign(ctx, run.Workspace, run.Campaign)
	if err != nil {
		s.Log.Warn("scheduled run: campaign", "campaign", run.Campaign, "err", err)
		return
	}
	doc, err := campaign.ParseDocument(c.Draft)
	if err != nil {
		return
	}
	v, _ := doc.Get(campaign.Pointer{"canvas"})
	raw, _ := json.Marshal(v)
	canvas, err := audience.ParseCanvas(raw)
	if err != nil {
		s.Log.Warn("scheduled run: canvas", "campaign", c.ID, "err", err)
		return
	}
	for _, id := range canvas.SortedIDs() {
		if canvas.Activities[id].Type != audience.SaveAudience {
			continue
		}
		res, err := s.Runner.Save(ctx, c.Workspace, c.ID, canvas, id, "schedule")
		if err != nil {
			s.Log.Warn("scheduled run: save audience", "campaign", c.ID, "activity", id, "err", err)
			continue
		}
		s.Log.Info("scheduled run saved an audience", "campaign", c.ID, "activity", id, "audience", res.Audience, "count", res.Count, "added", res.Added, "removed", res.Removed)
		if s.Saved != nil {
			s.Saved(ctx, c.Workspace, c.ID, id, res)
		}
	}
}
