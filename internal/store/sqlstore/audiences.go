package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/webhook"
)

func audienceNotFound(id string) error {
	return errcode.New(errcode.NotFound, "audience %s not found", id)
}

// AudienceColumns returns an audience's columns.
func (s *DB) AudienceColumns(ctx context.Context, workspace, id string) ([]string, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT columns FROM audiences WHERE workspace = $1 AND id = $2`, workspace, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, audienceNotFound(id)
	}
	if err != nil {
		return nil, s.wrap("audience columns", err)
	}
	var cols []string
	return cols, json.Unmarshal([]byte(raw), &cols)
}

// CountPopulation counts a population in the database.
func (s *DB) CountPopulation(ctx context.Context, p audience.Population) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (`+p.SQL+`) pop`, p.Args...).Scan(&n)
	return n, s.wrap("count population of "+p.Node, err)
}

// SamplePopulation returns the first rows of a population by id.
func (s *DB) SamplePopulation(ctx context.Context, p audience.Population, limit int) ([]map[string]any, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, data FROM (`+p.SQL+`) pop ORDER BY id LIMIT `+fmt.Sprint(limit), p.Args...)
	if err != nil {
		return nil, s.wrap("sample population of "+p.Node, err)
	}
	defer rows.Close()
	return scanRows(rows, p.Columns)
}

// scanRows turns (id, data) rows into objects keyed by column, with null
// for a missing value.
func scanRows(rows *sql.Rows, cols []string) ([]map[string]any, error) {
	out := []map[string]any{}
	for rows.Next() {
		var id string
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return nil, err
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		row := map[string]any{"id": id}
		for _, c := range cols {
			row[c] = m[c] // nil when missing
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// SaveAudience creates or updates an audience from a population.
func (s *DB) SaveAudience(ctx context.Context, a store.AudienceSave) (store.AudienceSaved, error) {
	op := "save audience " + a.Label + a.AudienceID
	for attempt := 0; ; attempt++ {
		res, err := s.saveAudience(ctx, a)
		if err != nil && attempt < 2 && isUniqueViolation(err) {
			continue // created concurrently under the same label: update it
		}
		if err != nil {
			return res, s.wrap(op, err)
		}
		return res, nil
	}
}

func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "23505")
}

func (s *DB) saveAudience(ctx context.Context, a store.AudienceSave) (store.AudienceSaved, error) {
	res := store.AudienceSaved{}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()

	var oldCols string
	switch a.Mode {
	case "update":
		err = tx.QueryRowContext(ctx, `SELECT id, label, columns FROM audiences WHERE workspace = $1 AND id = $2`, a.Workspace, a.AudienceID).Scan(&res.Audience, &res.Label, &oldCols)
		if errors.Is(err, sql.ErrNoRows) {
			return res, audienceNotFound(a.AudienceID)
		}
	default:
		err = tx.QueryRowContext(ctx, `SELECT id, label, columns FROM audiences WHERE workspace = $1 AND label = $2`, a.Workspace, a.Label).Scan(&res.Audience, &res.Label, &oldCols)
		if errors.Is(err, sql.ErrNoRows) {
			res.Audience, res.Label, res.Created, oldCols = a.NewID, a.Label, true, "[]"
			_, err = tx.ExecContext(ctx, `INSERT INTO audiences (id, workspace, label, dimension, kind, columns, count, source_campaign, created_at, updated_at)
				VALUES ($1, $2, $3, 'profile', 'list', '[]', 0, $4, $5, $5)`, a.NewID, a.Workspace, a.Label, a.SourceCampaign, now)
		}
	}
	if err != nil {
		return res, err
	}

	// Anti-joins are NOT EXISTS, never NOT IN (subquery): PostgreSQL turns
	// the latter into a per-row scan once the set outgrows work_mem.
	// The population, computed once into a temporary table of this
	// transaction's connection.
	create := `CREATE TEMP TABLE audience_pop AS SELECT id, data FROM (` + a.Population.SQL + `) pop`
	if s.dialect == postgres {
		create = `CREATE TEMP TABLE audience_pop ON COMMIT DROP AS SELECT id, data FROM (` + a.Population.SQL + `) pop`
	} else {
		tx.ExecContext(ctx, `DROP TABLE IF EXISTS temp.audience_pop`)
	}
	if _, err := tx.ExecContext(ctx, create, a.Population.Args...); err != nil {
		return res, err
	}
	// The index keeps both anti-joins below n log n whatever the planner's
	// statistics say (right after a bulk change they can claim a table of
	// a million rows is empty, and a nested loop without it is quadratic).
	if _, err := tx.ExecContext(ctx, `CREATE UNIQUE INDEX audience_pop_id ON audience_pop (id)`); err != nil {
		return res, err
	}
	var popCount int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audience_pop`).Scan(&popCount); err != nil {
		return res, err
	}
	if s.dialect == postgres {
		tx.ExecContext(ctx, `ANALYZE audience_pop`)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audience_pop p
		WHERE NOT EXISTS (SELECT 1 FROM audience_members m WHERE m.audience_id = $1 AND m.profile_id = p.id)`, res.Audience).Scan(&res.Added); err != nil {
		return res, err
	}
	cols := a.Population.Columns
	if a.UpdateMode == "replace" {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audience_members m
			WHERE m.audience_id = $1 AND NOT EXISTS (SELECT 1 FROM audience_pop p WHERE p.id = m.profile_id)`, res.Audience).Scan(&res.Removed); err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audience_members WHERE audience_id = $1`, res.Audience); err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audience_members (audience_id, profile_id, data) SELECT $1, id, data FROM audience_pop`, res.Audience); err != nil {
			return res, err
		}
	} else {
		var old []string
		json.Unmarshal([]byte(oldCols), &old)
		cols = mergeCols(old, cols)
		// A member already present takes the incoming values of the
		// incoming columns and keeps the rest: a merge, never a replace.
		merge := `json_patch(audience_members.data, excluded.data)`
		if s.dialect == postgres {
			merge = `audience_members.data || excluded.data`
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audience_members (audience_id, profile_id, data) SELECT $1, id, data FROM audience_pop WHERE true
			ON CONFLICT (audience_id, profile_id) DO UPDATE SET data = `+merge, res.Audience); err != nil {
			return res, err
		}
	}
	if a.UpdateMode == "replace" {
		res.Count = popCount
	} else if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audience_members WHERE audience_id = $1`, res.Audience).Scan(&res.Count); err != nil {
		return res, err
	}
	if cols == nil {
		cols = []string{}
	}
	colsJSON, _ := json.Marshal(cols)
	// Replace overwrites the kind, dimension and columns with the incoming
	// population's; append merges the columns.
	if _, err := tx.ExecContext(ctx, `UPDATE audiences SET columns = $1, count = $2, kind = 'list', dimension = 'profile', source_campaign = $3, updated_at = $4 WHERE id = $5`,
		string(colsJSON), res.Count, a.SourceCampaign, now, res.Audience); err != nil {
		return res, err
	}
	if err := enqueueData(ctx, tx, a.Workspace, webhook.AudienceSaved, a.SourceCampaign, webhook.AudienceSavedData{Audience: res.Audience, Label: res.Label,
		Campaign: a.SourceCampaign, Created: res.Created, Mode: a.UpdateMode, Count: res.Count, Added: res.Added, Removed: res.Removed, At: fromMS(now)}, fromMS(now)); err != nil {
		return res, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audience_saves (audience_id, at, count, added, removed, campaign_id, activity, activity_label, by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		res.Audience, now, res.Count, res.Added, res.Removed, a.SourceCampaign, a.Activity, a.ActivityLabel, a.By); err != nil {
		return res, err
	}
	if s.dialect == sqlite { // PostgreSQL drops it on commit
		if _, err := tx.ExecContext(ctx, `DROP TABLE temp.audience_pop`); err != nil {
			return res, err
		}
	}
	return res, tx.Commit()
}

func mergeCols(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, c := range b {
		found := false
		for _, x := range out {
			found = found || x == c
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}

// Audiences lists a workspace's audiences, newest first; query filters
// labels (case-insensitive substring).
func (s *DB) Audiences(ctx context.Context, workspace, query string) ([]store.AudienceSummary, error) {
	match := `instr(lower(label), lower($2)) > 0`
	if s.dialect == postgres {
		match = `strpos(lower(label), lower($2)) > 0`
	}
	const op = "list audiences"
	rows, err := s.db.QueryContext(ctx, `SELECT id, label, dimension, kind, count, updated_at, source_campaign FROM audiences
		WHERE workspace = $1 AND ($2 = '' OR `+match+`) ORDER BY updated_at DESC, id`, workspace, query)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	out := []store.AudienceSummary{}
	index := map[string]int{}
	for rows.Next() {
		var a store.AudienceSummary
		var updated int64
		if err := rows.Scan(&a.ID, &a.Label, &a.Dimension, &a.Kind, &a.Count, &updated, &a.Campaign); err != nil {
			rows.Close()
			return nil, s.wrap(op, err)
		}
		a.UpdatedAt = fromMS(updated)
		a.Sizes = []store.AudienceSize{}
		index[a.ID] = len(out)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, s.wrap(op, err)
	}
	// The size history of every listed audience, in one query: the last
	// saves of each, oldest first; the newest says who saved it from where.
	rows, err = s.db.QueryContext(ctx, `SELECT audience_id, at, count, campaign_id, activity, activity_label, by FROM (
		SELECT sv.*, row_number() OVER (PARTITION BY sv.audience_id ORDER BY sv.at DESC) AS rn
		FROM audience_saves sv JOIN audiences a ON a.id = sv.audience_id WHERE a.workspace = $1) x
		WHERE rn <= $2 ORDER BY audience_id, at`, workspace, store.MaxAudienceSizes)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, campaignID, activity, label, by string
		var at, count int64
		if err := rows.Scan(&id, &at, &count, &campaignID, &activity, &label, &by); err != nil {
			return nil, s.wrap(op, err)
		}
		i, ok := index[id]
		if !ok {
			continue
		}
		a := &out[i]
		a.Sizes = append(a.Sizes, store.AudienceSize{At: fromMS(at), Count: count})
		a.Campaign, a.Activity, a.ActivityLabel, a.By = campaignID, activity, label, by
	}
	return out, s.wrap(op, rows.Err())
}

// Audience returns an audience and a page of its members, in one
// transaction so the page and the count agree.
func (s *DB) Audience(ctx context.Context, workspace, id string, offset, limit int) (*store.AudienceDetail, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.dialect == postgres})
	if err != nil {
		return nil, s.wrap("get audience", err)
	}
	defer tx.Rollback()
	var d store.AudienceDetail
	var cols string
	var created, updated int64
	err = tx.QueryRowContext(ctx, `SELECT id, label, dimension, kind, count, updated_at, created_at, columns, source_campaign FROM audiences WHERE workspace = $1 AND id = $2`, workspace, id).
		Scan(&d.ID, &d.Label, &d.Dimension, &d.Kind, &d.Count, &updated, &created, &cols, &d.SourceCampaign)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, audienceNotFound(id)
	}
	if err != nil {
		return nil, s.wrap("get audience", err)
	}
	d.UpdatedAt, d.CreatedAt = fromMS(updated), fromMS(created)
	json.Unmarshal([]byte(cols), &d.Columns)
	rows, err := tx.QueryContext(ctx, `SELECT profile_id, data FROM audience_members WHERE audience_id = $1 ORDER BY profile_id LIMIT $2 OFFSET $3`, id, limit, offset)
	if err != nil {
		return nil, s.wrap("get audience", err)
	}
	defer rows.Close()
	if d.Rows, err = scanRows(rows, d.Columns); err != nil {
		return nil, s.wrap("get audience", err)
	}
	d.Columns = append([]string{"id"}, d.Columns...)
	return &d, nil
}

// EachMember streams an audience's members in id order: columns first
// (id and the audience's own), then fn once per member with its values in
// that order. Rows are read from the database as fn consumes them, so an
// audience of any size costs one row of memory.
func (s *DB) EachMember(ctx context.Context, workspace, id string, header func(columns []string) error, fn func(values []any) error) error {
	op := "export audience " + id
	var cols string
	err := s.db.QueryRowContext(ctx, `SELECT columns FROM audiences WHERE workspace = $1 AND id = $2`, workspace, id).Scan(&cols)
	if errors.Is(err, sql.ErrNoRows) {
		return audienceNotFound(id)
	}
	if err != nil {
		return s.wrap(op, err)
	}
	var columns []string
	json.Unmarshal([]byte(cols), &columns)
	if err := header(append([]string{"id"}, columns...)); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT profile_id, data FROM audience_members WHERE audience_id = $1 ORDER BY profile_id`, id)
	if err != nil {
		return s.wrap(op, err)
	}
	defer rows.Close()
	values := make([]any, len(columns)+1)
	var pid string
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&pid, &data); err != nil {
			return s.wrap(op, err)
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		values[0] = pid
		for i, c := range columns {
			values[i+1] = m[c]
		}
		if err := fn(values); err != nil {
			return err
		}
	}
	return s.wrap(op, rows.Err())
}
