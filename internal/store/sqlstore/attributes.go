package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/collab-dev/collab/internal/audience"
)

// ProfileCount counts a workspace's profiles.
func (s *DB) ProfileCount(ctx context.Context, workspace string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM profiles WHERE workspace = $1`, workspace).Scan(&n)
	return n, s.wrap("count profiles", err)
}

// sampled is the FROM clause of profiles p reading about sample of a
// workspace's total profiles: all of them when there are no more, else a
// sample: PostgreSQL reads a share of the table's pages (TABLESAMPLE
// SYSTEM, so the cost follows the sample, not the table), SQLite every
// k-th row.
func (s *DB) sampled(q *audience.Query, workspace string, total, sample int64) string {
	where := " WHERE p.workspace = " + q.Arg(workspace)
	if total <= sample {
		return "profiles p" + where
	}
	if s.dialect == postgres {
		pct := min(100, 100*float64(sample)/float64(total))
		// REPEATABLE: the queries of one listing read the same pages.
		return fmt.Sprintf("profiles p TABLESAMPLE SYSTEM (%.6f) REPEATABLE (7)", pct) + where
	}
	k := (total + sample - 1) / sample
	return "profiles p" + where + fmt.Sprintf(" AND p.rowid %% %d = 0", k)
}

// ProfileAttributes lists the attributes a workspace's profiles hold, with
// their types, fill rate and most frequent values, computed over a sample
// of about sample profiles (total is ProfileCount's).
func (s *DB) ProfileAttributes(ctx context.Context, workspace string, total, sample int64) (audience.Attributes, error) {
	out := audience.Attributes{Profiles: total, Attributes: []audience.Attribute{}}
	if total == 0 {
		return out, nil
	}
	const op = "list profile attributes"
	q := audience.NewQuery(s.Dialect())
	from := s.sampled(q, workspace, total, sample)
	// One pass: every (key, value) pair of the sample, typed and counted.
	var pairs, typ, scalar string
	if s.dialect == postgres {
		pairs = "SELECT e.key AS k, e.value AS v, jsonb_typeof(e.value) AS t FROM s, jsonb_each(s.attrs) e"
		typ = `CASE WHEN t = 'string' AND (v #>> '{}') ~ '^\d{4}-\d\d-\d\d' THEN 'date' ELSE t END`
		scalar = "t IN ('string','number','boolean') AND length(v::text) <= 102"
	} else {
		pairs = "SELECT j.key AS k, CASE j.type WHEN 'text' THEN json_quote(j.value) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(j.value AS TEXT) END AS v, " +
			"CASE j.type WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE j.type END AS t FROM s, json_each(s.attrs) j"
		typ = `CASE WHEN t = 'string' AND v GLOB '"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' THEN 'date' ELSE t END`
		scalar = "t IN ('string','number','boolean') AND length(v) <= 102"
	}
	with := "WITH s AS (SELECT p.attrs FROM " + from + "), kv AS (" + pairs + ") "
	var sampledN int64
	if err := s.db.QueryRowContext(ctx, "WITH s AS (SELECT p.attrs FROM "+from+") SELECT count(*) FROM s", q.Args()...).Scan(&sampledN); err != nil {
		return out, s.wrap(op, err)
	}
	if sampledN == 0 { // the sample missed the workspace's pages: read them all
		return s.ProfileAttributes(ctx, workspace, total, total)
	}
	out.Sampled = sampledN
	rows, err := s.db.QueryContext(ctx, with+"SELECT k, "+typ+" AS ty, count(*) FROM kv WHERE t <> 'null' GROUP BY k, ty", q.Args()...)
	if err != nil {
		return out, s.wrap(op, err)
	}
	byKey := map[string]*audience.Attribute{}
	for rows.Next() {
		var k, t string
		var n int64
		if err := rows.Scan(&k, &t, &n); err != nil {
			rows.Close()
			return out, s.wrap(op, err)
		}
		a := byKey[k]
		if a == nil {
			a = &audience.Attribute{Key: k, Types: map[string]int64{}, Values: []audience.ValueCount{}}
			byKey[k] = a
		}
		a.Types[t] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, s.wrap(op, err)
	}
	for _, a := range byKey {
		var filled int64
		for _, n := range a.Types {
			filled += n
		}
		a.Fill = float64(filled) / float64(sampledN)
		a.Type = audience.Dominant(a.Types)
		out.Attributes = append(out.Attributes, *a)
	}
	audience.SortAttributes(out.Attributes)
	if len(out.Attributes) > audience.MaxAttributes {
		out.Attributes = out.Attributes[:audience.MaxAttributes]
	}
	// The most frequent values of each, in a second pass over the sample.
	rows, err = s.db.QueryContext(ctx, with+fmt.Sprintf(`SELECT k, v, n FROM (SELECT k, v, count(*) AS n,
		row_number() OVER (PARTITION BY k ORDER BY count(*) DESC, v) AS rn FROM kv WHERE %s GROUP BY k, v) x WHERE rn <= %d`, scalar, audience.ValuesPerAttr), q.Args()...)
	if err != nil {
		return out, s.wrap(op, err)
	}
	defer rows.Close()
	index := map[string]int{}
	for i, a := range out.Attributes {
		index[a.Key] = i
	}
	for rows.Next() {
		var k, v string
		var n int64
		if err := rows.Scan(&k, &v, &n); err != nil {
			return out, s.wrap(op, err)
		}
		i, ok := index[k]
		var val any
		if !ok || json.Unmarshal([]byte(v), &val) != nil || !audience.Keep(val) {
			continue
		}
		out.Attributes[i].Values = append(out.Attributes[i].Values, audience.ValueCount{Value: val, Count: n})
	}
	return out, s.wrap(op, rows.Err())
}

// EstimateMatches counts the workspace's profiles matching r: exactly up to
// sample profiles, else scaled from a sample of about that many (exact
// false).
func (s *DB) EstimateMatches(ctx context.Context, workspace string, r *audience.Rule, total, sample int64) (n int64, exact bool, err error) {
	q := audience.NewQuery(s.Dialect())
	from := s.sampled(q, workspace, total, sample)
	pred := q.Where(r, "p")
	var seen, hit int64
	err = s.db.QueryRowContext(ctx, "SELECT count(*), COALESCE(sum(CASE WHEN "+pred+" THEN 1 ELSE 0 END), 0) FROM "+from, q.Args()...).Scan(&seen, &hit)
	if err != nil {
		return 0, false, s.wrap("count a rule's matches", err)
	}
	if total <= sample {
		return hit, true, nil
	}
	if seen == 0 { // the sample missed the workspace's pages: count them all
		q := audience.NewQuery(s.Dialect())
		err = s.db.QueryRowContext(ctx, "SELECT count(*) FROM profiles p WHERE p.workspace = "+q.Arg(workspace)+" AND "+q.Where(r, "p"), q.Args()...).Scan(&hit)
		return hit, true, s.wrap("count a rule's matches", err)
	}
	return int64(float64(hit) * float64(total) / float64(seen)), false, nil
}
