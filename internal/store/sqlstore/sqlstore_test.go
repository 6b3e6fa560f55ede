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
	url := testenv.Postgres(t)
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
