package sqlstore

import (
	"context"
	"encoding/json"
	"time"
)

// maxResults bounds the results kept per campaign (a canvas with more
// activities keeps the newest).
const maxResults = 200

// SaveActivityResult keeps an activity's last result of a kind ("run" or
// "save") as the message sessions receive.
func (s *DB) SaveActivityResult(ctx context.Context, workspace, campaignID, activity, kind string, msg json.RawMessage) error {
	op := "keep the result of " + activity
	if err := s.ownCampaign(ctx, workspace, campaignID); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO activity_results (campaign_id, activity, kind, result, at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (campaign_id, activity, kind) DO UPDATE SET result = excluded.result, at = excluded.at`,
		campaignID, activity, kind, string(msg), ms(time.Now()))
	return s.wrap(op, err)
}

// ActivityResults returns a campaign's kept results (one per activity and
// kind, the newest maxResults).
func (s *DB) ActivityResults(ctx context.Context, workspace, campaignID string) ([]json.RawMessage, error) {
	op := "read the results of " + campaignID
	if err := s.ownCampaign(ctx, workspace, campaignID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT result FROM activity_results WHERE campaign_id = $1 ORDER BY at DESC LIMIT $2`, campaignID, maxResults)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	out := []json.RawMessage{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, json.RawMessage(r))
	}
	return out, s.wrap(op, rows.Err())
}
