package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
)

// Dialect is the SQL flavour of the database.
func (s *DB) Dialect() audience.Dialect {
	if s.dialect == postgres {
		return audience.Postgres
	}
	return audience.SQLite
}

const maxReported = 100

// importSource feeds decoded profiles to the database and keeps the bad
// lines aside.
type importSource struct {
	next   func() (audience.Profile, error)
	report *store.ImportReport
	cur    audience.Profile
	seq    int64
	err    error
}

func (src *importSource) Next() bool {
	for {
		p, err := src.next()
		if err == io.EOF {
			return false
		}
		var le *audience.LineError
		if errors.As(err, &le) {
			src.report.BadLines++
			if len(src.report.Errors) < maxReported {
				src.report.Errors = append(src.report.Errors, le)
			}
			continue
		}
		if err != nil {
			src.err = err
			return false
		}
		src.cur = p
		src.seq++
		return true
	}
}

func (src *importSource) Values() ([]any, error) {
	return []any{src.seq, src.cur.ID, []byte(src.cur.Attrs)}, nil
}

func (src *importSource) Err() error { return src.err }

func badImport(r store.ImportReport) error {
	return errcode.New(errcode.Invalid, "%d bad lines, nothing imported (first: %s)", r.BadLines, r.Errors[0].Error())
}

// ImportProfiles upserts profiles in one transaction.
func (s *DB) ImportProfiles(ctx context.Context, workspace string, next func() (audience.Profile, error)) (store.ImportReport, error) {
	report := store.ImportReport{}
	src := &importSource{next: next, report: &report}
	now := time.Now().UnixMilli()
	if s.dialect == postgres {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE profile_import (seq BIGINT, id TEXT, attrs JSONB) ON COMMIT DROP`); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"profile_import"}, []string{"seq", "id", "attrs"}, src); err != nil {
				return err
			}
			if report.BadLines > 0 {
				return badImport(report)
			}
			// The last line wins for an id that appears twice.
			_, err := tx.Exec(ctx, `INSERT INTO profiles (workspace, id, attrs, updated_at)
				SELECT DISTINCT ON (id) $1, id, attrs, $2 FROM profile_import ORDER BY id, seq DESC
				ON CONFLICT (workspace, id) DO UPDATE SET attrs = EXCLUDED.attrs, updated_at = EXCLUDED.updated_at`, workspace, now)
			report.Imported = src.seq
			return err
		})
		if err != nil {
			report.Imported = 0
			return report, s.wrap("import profiles", err)
		}
		return report, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return report, s.wrap("import profiles", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO profiles (workspace, id, attrs, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace, id) DO UPDATE SET attrs = excluded.attrs, updated_at = excluded.updated_at`)
	if err != nil {
		return report, s.wrap("import profiles", err)
	}
	defer stmt.Close()
	var n int64
	for src.Next() {
		if report.BadLines > 0 {
			continue // keep reading to report every bad line; write nothing
		}
		if _, err := stmt.ExecContext(ctx, workspace, src.cur.ID, string(src.cur.Attrs), now); err != nil {
			return report, s.wrap("import profiles", err)
		}
		n++
	}
	if src.err != nil {
		return report, s.wrap("import profiles", src.err)
	}
	if report.BadLines > 0 {
		return report, badImport(report)
	}
	if err := tx.Commit(); err != nil {
		return report, s.wrap("import profiles", err)
	}
	report.Imported = n
	return report, nil
}

// MatchProfiles returns the matching ids, sorted.
func (s *DB) MatchProfiles(ctx context.Context, workspace string, r *audience.Rule) ([]string, error) {
	q := audience.NewQuery(s.Dialect())
	text := fmt.Sprintf(`SELECT p.id FROM profiles p WHERE p.workspace = %s AND %s ORDER BY p.id`, q.Arg(workspace), q.Where(r, "p"))
	rows, err := s.db.QueryContext(ctx, text, q.Args()...)
	if err != nil {
		return nil, s.wrap("match profiles", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap("match profiles", err)
		}
		ids = append(ids, id)
	}
	return ids, s.wrap("match profiles", rows.Err())
}
