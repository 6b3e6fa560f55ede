package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// DocumentSchema returns the workspace's document schema, nil when it has
// none.
func (s *DB) DocumentSchema(ctx context.Context, workspace string) ([]byte, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT schema FROM document_schemas WHERE workspace = $1`, workspace).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap("read the document schema of "+workspace, err)
	}
	return []byte(raw), nil
}

// SetDocumentSchema sets the workspace's document schema (already checked
// to compile); nil removes it.
func (s *DB) SetDocumentSchema(ctx context.Context, workspace string, raw []byte, by string) error {
	op := "set the document schema of " + workspace
	if raw == nil {
		_, err := s.db.ExecContext(ctx, `DELETE FROM document_schemas WHERE workspace = $1`, workspace)
		return s.wrap(op, err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO document_schemas (workspace, schema, updated_at, updated_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace) DO UPDATE SET schema = excluded.schema, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		workspace, string(raw), ms(time.Now()), by)
	return s.wrap(op, err)
}
