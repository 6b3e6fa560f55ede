// Package testenv finds the real backends that integration tests may use.
// A suite whose backend is not configured skips with a message saying how to
// enable it; when COLLAB_TEST_REQUIRE names that backend (CI sets it), the
// suite fails instead, so a missing server can never pass as a skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

const (
	// RedisVar holds a Redis URL for the real-Redis suites.
	RedisVar = "COLLAB_TEST_REDIS_URL"
	// ClusterVar holds a Redis Cluster as redis-cluster://h1:p1,h2:p2,...
	// for the real-Redis suites to run on it too.
	ClusterVar = "COLLAB_TEST_REDIS_CLUSTER_URL"
	// PostgresVar holds a PostgreSQL URL for the real-PostgreSQL suites.
	PostgresVar = "COLLAB_TEST_DATABASE_URL"
	// RequireVar lists backends that must be present: "redis,cluster,postgres,chromium".
	RequireVar = "COLLAB_TEST_REQUIRE"
)

// Required reports whether backend is listed in COLLAB_TEST_REQUIRE.
func Required(backend string) bool {
	for _, b := range strings.Split(os.Getenv(RequireVar), ",") {
		if strings.TrimSpace(b) == backend {
			return true
		}
	}
	return false
}

// Redis returns the real Redis URL, or skips (fails when required).
func Redis(tb testing.TB) string { return lookup(tb, "redis", RedisVar, "redis://127.0.0.1:6379/0") }

// Postgres returns the real PostgreSQL URL, or skips (fails when required).
func Postgres(tb testing.TB) string {
	return lookup(tb, "postgres", PostgresVar, "postgres://collab:collab@127.0.0.1:5432/collab_test")
}

func getenv(k string) string { return os.Getenv(k) }

func lookup(tb testing.TB, backend, envVar, example string) string {
	tb.Helper()
	if v := os.Getenv(envVar); v != "" {
		return v
	}
	msg := "real " + backend + " suite not run: set " + envVar + "=" + example + " to run it (bash .ci/run installs and starts one)"
	if Required(backend) {
		tb.Fatal(msg + "; " + RequireVar + " requires it")
	}
	tb.Skip(msg)
	return ""
}

// ChromiumVar holds the path of a Chromium binary for the browser tests.
const ChromiumVar = "COLLAB_TEST_CHROMIUM"

// Chromium returns a headless-capable Chromium (COLLAB_TEST_CHROMIUM, else
// chromium or google-chrome on the PATH), or skips (fails when required).
func Chromium(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv(ChromiumVar); v != "" {
		return v
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "browser suite not run: install Chromium (apt-get install chromium) or set " + ChromiumVar + "=/path/to/chromium"
	if Required("chromium") {
		tb.Fatal(msg + "; " + RequireVar + " requires it")
	}
	tb.Skip(msg)
	return ""
}

// PostgresSchema returns the real PostgreSQL URL (skipping or failing as
// Postgres does) pointed at a schema of the test's own, dropped at cleanup.
// Suites share one database, and some state is shared across a database
// by design (a webhook deliverer claims every pending delivery it holds):
// a suite that counts such state needs a database of its own.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresVar, err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		conn.Close(context.Background())
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
