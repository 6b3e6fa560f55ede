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

// Scheduler runs canvases whose /canvas/schedule is due. Every node runs
// one; each occurrence is claimed in the store with a compare-and-set, so
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
	Saved func(ctx context.Context, campaign, activity string, res store.AudienceSaved)
	Every time.Duration    // how often to look (30 s)
	Now   func() time.Time // the clock (time.Now)
	Log   *slog.Logger

	synced time.Time
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

// Tick syncs schedules from recently saved drafts, then runs what is due.
func (s *Scheduler) Tick(ctx context.Context) {
	now := s.now()
	if err := s.sync(ctx, now); err != nil && ctx.Err() == nil {
		s.Log.Warn("schedules: sync", "err", err)
	}
	due, err := s.Store.DueSchedules(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("schedules: due", "err", err)
		}
		return
	}
	for _, run := range due {
		sched, err := audience.ParseSchedule(json.RawMessage(run.Spec))
		if err != nil {
			s.Store.SetSchedule(ctx, run.Workspace, run.Campaign, "", nil)
			continue
		}
		var next *time.Time
		if n, ok := sched.Next(now); ok {
			next = &n
		}
		won, err := s.Store.ClaimRun(ctx, run.Campaign, run.Due, next)
		if err != nil || !won {
			continue // another node has it
		}
		s.runCanvas(ctx, run)
	}
}

// sync reads the schedules of campaigns saved since the last look (with a
// margin for clocks and commit order).
func (s *Scheduler) sync(ctx context.Context, now time.Time) error {
	since := s.synced.Add(-time.Minute)
	if s.synced.IsZero() {
		since = time.Time{}
	}
	list, err := s.Store.CampaignsUpdatedSince(ctx, since)
	if err != nil {
		return err
	}
	for _, c := range list {
		spec, next := scheduleOf(c, now)
		if err := s.Store.SetSchedule(ctx, c.Workspace, c.ID, spec, next); err != nil {
			return err
		}
	}
	s.synced = now
	return nil
}

func scheduleOf(c *campaign.Campaign, now time.Time) (string, *time.Time) {
	if c.Status == campaign.Archived {
		return "", nil
	}
	doc, err := campaign.ParseDocument(c.Draft)
	if err != nil {
		return "", nil
	}
	v, ok := doc.Get(campaign.Pointer{"canvas", "schedule"})
	if !ok || v == nil {
		return "", nil
	}
	raw, _ := json.Marshal(v)
	sched, err := audience.ParseSchedule(raw)
	if err != nil {
		return "", nil
	}
	if n, ok := sched.Next(now); ok {
		return string(raw), &n
	}
	return string(raw), nil
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
		res, err := s.Runner.Save(ctx, c.Workspace, c.ID, canvas, id)
		if err != nil {
			s.Log.Warn("scheduled run: save audience", "campaign", c.ID, "activity", id, "err", err)
			continue
		}
		s.Log.Info("scheduled run saved an audience", "campaign", c.ID, "activity", id, "audience", res.Audience, "count", res.Count, "added", res.Added, "removed", res.Removed)
		if s.Saved != nil {
			s.Saved(ctx, c.ID, id, res)
		}
	}
}
