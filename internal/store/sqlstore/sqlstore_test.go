package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

func openSQLite(t *testing.T) store.Store {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "collab.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openPostgres(t *testing.T) store.Store {
	// A schema per test: the fault tests' nodes share the database, and
	// their webhook deliverers would claim this test's deliveries.
	url := testenv.PostgresSchema(t)
	s, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T)   { storetest.Run(t, openSQLite) }
func TestPostgresConformance(t *testing.T) { testenv.Postgres(t); storetest.Run(t, openPostgres) }

func TestUnreachablePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	// Port 1 on loopback refuses at once; the store must say so, not hang.
	_, err := OpenPostgres(ctx, "postgres://u:p@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		t.Fatal("opened an unreachable database")
	}
	if errcode.Of(err) != errcode.Unavailable {
		t.Fatalf("want unavailable, got %v", err)
	}
	if time.Since(start) > 8*time.Second {
		t.Fatal("took too long to fail")
	}
}

func TestSQLiteBadPath(t *testing.T) {
	_, err := OpenSQLite(context.Background(), "/nonexistent-dir/x/collab.db")
	if err == nil {
		t.Fatal("opened a database in a missing directory")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "collab.db")
	for i := 0; i < 2; i++ {
		s, err := OpenSQLite(context.Background(), file)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		s.Close()
	}
}

// A PostgreSQL that ends our connections (a shutdown, a failover) answers
// unavailable, which callers retry, never internal.
func TestPostgresShutdownIsUnavailable(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	app := "collab_shutdown_" + storetest.ID("")
	s, err := OpenPostgres(ctx, url+"&application_name="+app)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	failed := 0
	for i := 0; i < 5; i++ {
		if _, err := s.Campaigns(ctx, "w"); err != nil {
			t.Fatalf("before: %v", err)
		}
		if _, err := admin.db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
			t.Fatal(err)
		}
		_, err := s.Campaigns(ctx, "w")
		if err != nil {
			failed++
			if errcode.Of(err) != errcode.Unavailable {
				t.Fatalf("a terminated connection answered %s: %v", errcode.Of(err), err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no query ever met a terminated connection")
	}
	if got := unavailableState("57P01"); !got {
		t.Fatal("57P01 not unavailable")
	}
}
