package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/webhook"
)

// SetSavedWindow sets how long a campaign.saved event takes in later saves
// of its campaign before it is delivered: at most one such event per
// campaign per window (0: one per save).
func (s *DB) SetSavedWindow(d time.Duration) { s.savedWindow = d }

// enqueue writes an event and its deliveries (one per endpoint of the
// workspace) inside tx, the transaction of the change it reports.
func enqueue(ctx context.Context, tx *sql.Tx, ev webhook.Event, deliverAfter time.Time) error {
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO webhook_events (workspace, type, campaign, payload, created_at, deliver_after)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, ev.Workspace, ev.Type, ev.Campaign, string(ev.Payload), ms(ev.CreatedAt), ms(deliverAfter)).Scan(&id); err != nil {
		return fmt.Errorf("write %s event: %w", ev.Type, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, campaign, state, next_at)
		SELECT $1, id, $2, 'pending', $3 FROM webhook_endpoints WHERE workspace = $4`, id, ev.Campaign, ms(deliverAfter), ev.Workspace); err != nil {
		return fmt.Errorf("write %s deliveries: %w", ev.Type, err)
	}
	return nil
}

// enqueueData marshals data into an event of typ and enqueues it now.
func enqueueData(ctx context.Context, tx *sql.Tx, workspace string, typ webhook.Type, campaignID string, data any, at time.Time) error {
	payload, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return enqueue(ctx, tx, webhook.Event{Workspace: workspace, Type: typ, Campaign: campaignID, Payload: payload, CreatedAt: at}, at)
}

// enqueueSaved folds a save into the campaign's campaign.saved event still
// in its window, or opens a new one. Saves of one campaign are serialized
// by the campaign row the save updated first, so two cannot race here; a
// second's margin keeps a merge off an event a deliverer may be claiming.
func (s *DB) enqueueSaved(ctx context.Context, tx *sql.Tx, workspace string, p webhook.Saved, at time.Time) error {
	var id int64
	var raw string
	err := tx.QueryRowContext(ctx, `SELECT id, payload FROM webhook_events WHERE campaign = $1 AND type = $2 AND deliver_after > $3
		ORDER BY id DESC LIMIT 1`, p.Campaign, webhook.CampaignSaved, ms(at)+1000).Scan(&id, &raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		payload, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return enqueue(ctx, tx, webhook.Event{Workspace: workspace, Type: webhook.CampaignSaved, Campaign: p.Campaign, Payload: payload, CreatedAt: at}, at.Add(s.savedWindow))
	case err != nil:
		return fmt.Errorf("read the open campaign.saved event: %w", err)
	}
	var open webhook.Saved
	if err := json.Unmarshal([]byte(raw), &open); err != nil {
		return fmt.Errorf("event %d: %w", id, err)
	}
	payload, err := json.Marshal(open.Merge(p))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE webhook_events SET payload = $1 WHERE id = $2`, string(payload), id)
	return err
}

func (s *DB) CreateEndpoint(ctx context.Context, e webhook.Endpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, workspace, url, secret, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ID, e.Workspace, e.URL, e.Secret, ms(e.CreatedAt), e.CreatedBy)
	return s.wrap("create webhook endpoint", err)
}

func (s *DB) Endpoints(ctx context.Context, workspace string) ([]webhook.Endpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, url, created_at, created_by FROM webhook_endpoints WHERE workspace = $1 ORDER BY created_at, id`, workspace)
	if err != nil {
		return nil, s.wrap("list webhook endpoints", err)
	}
	defer rows.Close()
	list := []webhook.Endpoint{}
	for rows.Next() {
		e := webhook.Endpoint{Workspace: workspace}
		var at int64
		if err := rows.Scan(&e.ID, &e.URL, &at, &e.CreatedBy); err != nil {
			return nil, s.wrap("list webhook endpoints", err)
		}
		e.CreatedAt = fromMS(at)
		list = append(list, e)
	}
	return list, s.wrap("list webhook endpoints", rows.Err())
}

func endpointNotFound(id string) error {
	return errcode.New(errcode.NotFound, "webhook endpoint %s not found", id)
}

func (s *DB) DeleteEndpoint(ctx context.Context, workspace, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE workspace = $1 AND id = $2`, workspace, id)
	if err != nil {
		return s.wrap("delete webhook endpoint "+id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return endpointNotFound(id)
	}
	return nil
}

// Events lists a workspace's events after an id, oldest first.
func (s *DB) Events(ctx context.Context, workspace string, after int64, limit int) ([]webhook.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, type, campaign, payload, created_at FROM webhook_events
		WHERE workspace = $1 AND id > $2 ORDER BY id LIMIT $3`, workspace, after, limit)
	if err != nil {
		return nil, s.wrap("list webhook events", err)
	}
	defer rows.Close()
	var list []webhook.Event
	for rows.Next() {
		e := webhook.Event{Workspace: workspace}
		var payload string
		var at int64
		if err := rows.Scan(&e.ID, &e.Type, &e.Campaign, &payload, &at); err != nil {
			return nil, s.wrap("list webhook events", err)
		}
		e.Payload, e.CreatedAt = []byte(payload), fromMS(at)
		list = append(list, e)
	}
	return list, s.wrap("list webhook events", rows.Err())
}

// ClaimDeliveries leases the due heads of the delivery chains (one per
// endpoint and campaign). On PostgreSQL, FOR UPDATE SKIP LOCKED lets nodes
// claim side by side, each skipping the rows another is claiming; on
// SQLite the transaction's write lock (taken up front) serializes claims.
func (s *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]webhook.Delivery, error) {
	op := "claim webhook deliveries"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer tx.Rollback()
	lock := ""
	if s.dialect == postgres {
		lock = " FOR UPDATE OF d SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, `SELECT d.event_id, d.endpoint_id FROM webhook_deliveries d
		WHERE d.state = 'pending' AND d.next_at <= $1 AND d.lease_until <= $1
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.endpoint_id = d.endpoint_id AND e.campaign = d.campaign
			AND e.state = 'pending' AND e.event_id < d.event_id)
		ORDER BY d.event_id LIMIT $2`+lock, ms(now), limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	type key struct {
		event    int64
		endpoint string
	}
	var keys []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.event, &k.endpoint); err != nil {
			rows.Close()
			return nil, s.wrap(op, err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	out := make([]webhook.Delivery, 0, len(keys))
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_until = $1 WHERE event_id = $2 AND endpoint_id = $3`,
			ms(now.Add(lease)), k.event, k.endpoint); err != nil {
			return nil, s.wrap(op, err)
		}
		d := webhook.Delivery{Endpoint: k.endpoint}
		var payload string
		var at int64
		if err := tx.QueryRowContext(ctx, `SELECT e.id, e.workspace, e.type, e.campaign, e.payload, e.created_at, p.url, p.secret, d.attempts
			FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id JOIN webhook_endpoints p ON p.id = d.endpoint_id
			WHERE d.event_id = $1 AND d.endpoint_id = $2`, k.event, k.endpoint).Scan(&d.ID, &d.Workspace, &d.Type, &d.Campaign, &payload, &at,
			&d.URL, &d.Secret, &d.Attempts); err != nil {
			return nil, s.wrap(op, err)
		}
		d.Payload, d.CreatedAt = []byte(payload), fromMS(at)
		out = append(out, d)
	}
	return out, s.wrap(op, tx.Commit())
}

// RecordAttempt logs an attempt and settles the delivery (or schedules the
// next attempt), releasing its lease.
func (s *DB) RecordAttempt(ctx context.Context, a webhook.Attempt) error {
	op := "record a webhook attempt"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback()
	// attempts counts toward the retry schedule (a replay resets it); the
	// log numbers every attempt ever made.
	var n, logged int
	if err := tx.QueryRowContext(ctx, `SELECT attempts, (SELECT COALESCE(max(n), 0) FROM webhook_attempts a WHERE a.event_id = d.event_id AND a.endpoint_id = d.endpoint_id)
		FROM webhook_deliveries d WHERE event_id = $1 AND endpoint_id = $2`, a.Event, a.Endpoint).Scan(&n, &logged); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the endpoint was deleted meanwhile
		}
		return s.wrap(op, err)
	}
	n++
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (event_id, endpoint_id, n, at, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.Event, a.Endpoint, logged+1, ms(a.At), a.Status, a.Error, a.Duration.Milliseconds()); err != nil {
		return s.wrap(op, err)
	}
	var delivered any
	next := ms(a.At)
	if a.State == webhook.Delivered {
		delivered = ms(a.At.Add(a.Duration))
	}
	if a.State == webhook.Pending {
		next = ms(a.NextAt)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = $1, state = $2, next_at = $3, lease_until = 0, delivered_at = $4
		WHERE event_id = $5 AND endpoint_id = $6`, n, a.State, next, delivered, a.Event, a.Endpoint); err != nil {
		return s.wrap(op, err)
	}
	return s.wrap(op, tx.Commit())
}

func (s *DB) OutboxStats(ctx context.Context) (webhook.Stats, error) {
	var st webhook.Stats
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), min(e.created_at) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
		WHERE d.state = 'pending'`).Scan(&st.Pending, &oldest); err != nil {
		return st, s.wrap("webhook outbox stats", err)
	}
	if oldest.Valid {
		st.OldestPending = fromMS(oldest.Int64)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE state = 'failed'`).Scan(&st.Failed); err != nil {
		return st, s.wrap("webhook outbox stats", err)
	}
	return st, nil
}

// maxTries bounds the attempts the delivery log shows per delivery (the
// newest).
const maxTries = 20

// Deliveries is an endpoint's delivery log, newest first, each with its
// attempts.
func (s *DB) Deliveries(ctx context.Context, workspace, endpoint string, limit int) ([]webhook.DeliveryLog, error) {
	op := "list webhook deliveries"
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE workspace = $1 AND id = $2`, workspace, endpoint).Scan(&n); err != nil {
		return nil, s.wrap(op, err)
	}
	if n == 0 {
		return nil, endpointNotFound(endpoint)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT e.id, e.type, e.campaign, d.state, d.attempts, d.next_at, d.delivered_at, e.created_at
		FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = $1 ORDER BY e.id DESC LIMIT $2`, endpoint, limit)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	list := []webhook.DeliveryLog{}
	var ids []int64
	for rows.Next() {
		var l webhook.DeliveryLog
		var id, next, at int64
		var delivered sql.NullInt64
		if err := rows.Scan(&id, &l.Type, &l.Campaign, &l.State, &l.Attempts, &next, &delivered, &at); err != nil {
			rows.Close()
			return nil, s.wrap(op, err)
		}
		l.Event = webhook.Event{ID: id}.Key()
		l.CreatedAt = fromMS(at)
		if l.State == webhook.Pending {
			t := fromMS(next)
			l.NextAt = &t
		}
		if delivered.Valid {
			t := fromMS(delivered.Int64)
			l.DeliveredAt = &t
		}
		l.Tries = []webhook.AttemptLog{}
		list = append(list, l)
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	if len(ids) == 0 {
		return list, nil
	}
	// The listed deliveries are the endpoint's newest, so they are all of
	// its deliveries between the oldest and newest listed event: one read
	// of their attempts, not one per delivery.
	index := make(map[int64]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	ar, err := s.db.QueryContext(ctx, `SELECT event_id, at, status, error, duration_ms FROM webhook_attempts
		WHERE endpoint_id = $1 AND event_id >= $2 AND event_id <= $3 ORDER BY event_id, n DESC`, endpoint, ids[len(ids)-1], ids[0])
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer ar.Close()
	for ar.Next() {
		var a webhook.AttemptLog
		var id, at int64
		if err := ar.Scan(&id, &at, &a.Status, &a.Error, &a.DurationMS); err != nil {
			return nil, s.wrap(op, err)
		}
		a.At = fromMS(at)
		if i, ok := index[id]; ok && len(list[i].Tries) < maxTries {
			list[i].Tries = append(list[i].Tries, a)
		}
	}
	if err := ar.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return list, nil
}

// Replay makes a workspace's deliveries of events from..to (inclusive) due
// again, delivered or given up alike; endpoint "" means every endpoint. It
// returns how many it queued. Receivers see the same idempotency keys.
func (s *DB) Replay(ctx context.Context, workspace string, from, to int64, endpoint string) (int64, error) {
	q := `UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = $1, lease_until = 0, delivered_at = NULL
		WHERE event_id >= $2 AND event_id <= $3 AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE workspace = $4`
	args := []any{ms(time.Now()), from, to, workspace}
	if endpoint != "" {
		q += ` AND id = $5`
		args = append(args, endpoint)
	}
	res, err := s.db.ExecContext(ctx, strings.TrimSpace(q)+")", args...)
	if err != nil {
		return 0, s.wrap("replay webhook events", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
