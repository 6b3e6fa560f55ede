package sqlstore

import (
	"context"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/store"
)

// CampaignsUpdatedSince returns the campaigns saved at or after since.
func (s *DB) CampaignsUpdatedSince(ctx context.Context, since time.Time) ([]*campaign.Campaign, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE updated_at >= $1 ORDER BY updated_at`, ms(since))
	if err != nil {
		return nil, s.wrap("campaigns updated since", err)
	}
	defer rows.Close()
	var out []*campaign.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, s.wrap("campaigns updated since", err)
		}
		out = append(out, c)
	}
	return out, s.wrap("campaigns updated since", rows.Err())
}

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

// SetSchedule records a campaign's schedule.
func (s *DB) SetSchedule(ctx context.Context, workspace, id, spec string, next *time.Time) error {
	if spec == "" {
		_, err := s.db.ExecContext(ctx, `DELETE FROM campaign_schedules WHERE campaign_id = $1`, id)
		return s.wrap("clear schedule of "+id, err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO campaign_schedules (campaign_id, workspace, spec, next_run, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (campaign_id) DO UPDATE SET
			next_run = CASE WHEN campaign_schedules.spec = excluded.spec THEN campaign_schedules.next_run ELSE excluded.next_run END,
			spec = excluded.spec, updated_at = excluded.updated_at`, id, workspace, spec, nullMS(next), time.Now().UnixMilli())
	return s.wrap("set schedule of "+id, err)
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
