// Package sqlstore implements store.Store on SQLite (the embedded default,
// through the pure-Go modernc.org/sqlite driver) and on PostgreSQL (through
// pgx). Both run the same SQL text: SQLite accepts PostgreSQL's $N
// placeholders, times are stored as Unix milliseconds and documents as text,
// so the dialects differ only in their migrations and connection setup.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/collab-dev/collab/internal/errcode"
)

//go:embed migrations
var migrations embed.FS

type dialect string

const (
	sqlite   dialect = "sqlite"
	postgres dialect = "postgres"
)

// DB is a store.Store on a SQL database.
type DB struct {
	db      *sql.DB
	dialect dialect
	pool    *pgxpool.Pool // PostgreSQL only: bulk paths use pgx directly

	savedWindow time.Duration // see SetSavedWindow
}

// OpenSQLite opens (creating it if needed) the SQLite database file at path
// and applies the migrations. WAL lets readers run beside the one writer;
// transactions take the write lock up front (_txlock=immediate) so that two
// writers queue on busy_timeout instead of failing to upgrade a read lock.
func OpenSQLite(ctx context.Context, file string) (*DB, error) {
	dsn := "file:" + file + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	db.SetMaxOpenConns(8)
	s := &DB{db: db, dialect: sqlite}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", file, err)
	}
	return s, nil
}

// OpenPostgres connects to the PostgreSQL database at url
// (postgres://user:pass@host:port/db?...) and applies the migrations.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := &DB{db: stdlib.OpenDBFromPool(pool), dialect: postgres, pool: pool}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return s, nil
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error {
	return s.wrap("ping "+string(s.dialect), s.db.PingContext(ctx))
}

// Close releases the database.
func (s *DB) Close() error {
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// init applies the embedded migrations not yet recorded, each in its own
// transaction. On PostgreSQL an advisory lock keeps nodes starting together
// from racing; SQLite's immediate transactions already serialize.
func (s *DB) init(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	dir := path.Join("migrations", string(s.dialect))
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7261001)"); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad file name %s", e.Name())
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, v).Scan(&n); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(migrations, path.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", e.Name(), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migrate %s: %w", e.Name(), err)
		}
	}
	return tx.Commit()
}

// wrap classifies database failures that callers must tell apart: a store
// that cannot be reached is unavailable, not an internal error.
func (s *DB) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && unavailableState(pgErr.Code) {
		return fmt.Errorf("%s: %w: %w", op, errcode.New(errcode.Unavailable, "the database is unavailable (%s)", pgErr.Code), err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) || errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, puddle.ErrClosedPool) || strings.Contains(err.Error(), "database is closed") {
		return fmt.Errorf("%s: %w: %w", op, errcode.New(errcode.Unavailable, "the database is unavailable"), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailableState reports whether a PostgreSQL SQLSTATE means the server
// cannot serve now (shutting down, starting, out of connections, cut off),
// so that the caller retries rather than reports an internal error.
func unavailableState(code string) bool {
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, recovering)
		"53300", // too_many_connections
		"40001", // serialization_failure
		"40P01": // deadlock_detected
		return true
	}
	return strings.HasPrefix(code, "08") // connection exceptions
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
