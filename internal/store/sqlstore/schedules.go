package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/store"
)

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// saveSchedule records the schedule of a draft being saved, in the save's
// transaction: the row follows the draft, so the scheduler never has to
// read drafts. An unchanged spec keeps its planned next run; a new one
// waits for the scheduler to plan it (the scheduler owns the clock).
func saveSchedule(ctx context.Context, tx execer, workspace, id string, draft []byte) error {
	spec := audience.DraftSchedule(draft)
	if spec == "" {
		_, err := tx.ExecContext(ctx, `DELETE FROM campaign_schedules WHERE campaign_id = $1`, id)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO campaign_schedules (campaign_id, workspace, spec, next_run, updated_at, planned) VALUES ($1, $2, $3, NULL, $4, 0)
		ON CONFLICT (campaign_id) DO UPDATE SET
			next_run = CASE WHEN campaign_schedules.spec = excluded.spec THEN campaign_schedules.next_run ELSE NULL END,
			planned = CASE WHEN campaign_schedules.spec = excluded.spec THEN campaign_schedules.planned ELSE 0 END,
			spec = excluded.spec, updated_at = excluded.updated_at`, id, workspace, spec, time.Now().UnixMilli())
	return err
}

// UnplannedSchedules lists the schedules whose next run is yet to be
// computed: those a save just wrote or changed.
func (s *DB) UnplannedSchedules(ctx context.Context) ([]store.ScheduledRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT campaign_id, workspace, spec FROM campaign_schedules WHERE planned = 0 ORDER BY campaign_id`)
	if err != nil {
		return nil, s.wrap("unplanned schedules", err)
	}
	defer rows.Close()
	var out []store.ScheduledRun
	for rows.Next() {
		var r store.ScheduledRun
		if err := rows.Scan(&r.Campaign, &r.Workspace, &r.Spec); err != nil {
			return nil, s.wrap("unplanned schedules", err)
		}
		out = append(out, r)
	}
	return out, s.wrap("unplanned schedules", rows.Err())
}

// PlanSchedule sets the next run of a schedule still at spec (nil: it has
// none left); a save that changed the spec since wins.
func (s *DB) PlanSchedule(ctx context.Context, id, spec string, next *time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE campaign_schedules SET next_run = $1, planned = 1 WHERE campaign_id = $2 AND spec = $3`, nullMS(next), id, spec)
	return s.wrap("plan schedule of "+id, err)
}

// DueSchedules lists the runs due at now.
func (s *DB) DueSchedules(ctx context.Context, now time.Time) ([]store.ScheduledRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT campaign_id, workspace, spec, next_run FROM campaign_schedules WHERE next_run <= $1 ORDER BY next_run`, ms(now))
	if err != nil {
		return nil, s.wrap("due schedules", err)
	}
	defer rows.Close()
	var out []store.ScheduledRun
	for rows.Next() {
		var r store.ScheduledRun
		var due int64
		if err := rows.Scan(&r.Campaign, &r.Workspace, &r.Spec, &due); err != nil {
			return nil, s.wrap("due schedules", err)
		}
		r.Due = fromMS(due)
		out = append(out, r)
	}
	return out, s.wrap("due schedules", rows.Err())
}

// ClaimRun advances a due run; true for the one caller that won it.
func (s *DB) ClaimRun(ctx context.Context, id string, due time.Time, next *time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE campaign_schedules SET next_run = $1 WHERE campaign_id = $2 AND next_run = $3`, nullMS(next), id, ms(due))
	if err != nil {
		return false, s.wrap("claim run of "+id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
