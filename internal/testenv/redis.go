package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RedisBackend is one Redis-compatible server a suite runs against.
type RedisBackend struct {
	Name string
	// URL is the server's address as a redis:// URL.
	URL string
}

// Client returns a new client for the backend, closed with the test: a
// cluster client for a redis-cluster:// URL.
func (b RedisBackend) Client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	if addrs, ok := strings.CutPrefix(b.URL, "redis-cluster://"); ok {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
		tb.Cleanup(func() { c.Close() })
		return c
	}
	opt, err := redis.ParseURL(b.URL)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}

// RedisBackends returns the in-process server (always) and the real Redis
// (when configured; skipped with a message otherwise, failed when required),
// so that one suite runs on both.
func RedisBackends(t *testing.T) []RedisBackend {
	t.Helper()
	m := miniredis.RunT(t)
	out := []RedisBackend{{Name: "embedded", URL: "redis://" + m.Addr()}}
	if url := lookupQuiet(t, "redis", RedisVar); url != "" {
		c := redis.NewClient(mustParse(t, url))
		defer c.Close()
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("%s=%s: %v", RedisVar, url, err)
		}
		out = append(out, RedisBackend{Name: "redis", URL: url})
	}
	if url := lookupQuiet(t, "cluster", ClusterVar); url != "" {
		be := RedisBackend{Name: "cluster", URL: url}
		c := be.Client(t)
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("%s=%s: %v", ClusterVar, url, err)
		}
		out = append(out, be)
	}
	return out
}

// IsCluster reports whether the backend is a Redis Cluster.
func (b RedisBackend) IsCluster() bool { return strings.HasPrefix(b.URL, "redis-cluster://") }

func mustParse(t *testing.T, url string) *redis.Options {
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", RedisVar, err)
	}
	return opt
}

// lookupQuiet returns the backend URL, or "" after logging how to enable it
// (failing when required): used where the embedded backend still runs.
func lookupQuiet(t testing.TB, backend, envVar string) string {
	t.Helper()
	url := getenv(envVar)
	if url == "" {
		if Required(backend) {
			t.Fatalf("%s not set but %s requires %s", envVar, RequireVar, backend)
		}
		t.Logf("real %s not tested: set %s to run this suite on it too", backend, envVar)
	}
	return url
}

// PostgresIfSet returns the real PostgreSQL URL, or "" after logging how to
// set it (failing when required): for suites that fall back to SQLite.
func PostgresIfSet(t testing.TB) string {
	t.Helper()
	url := getenv(PostgresVar)
	if url == "" {
		if Required("postgres") {
			t.Fatalf("%s not set but %s requires postgres", PostgresVar, RequireVar)
		}
		t.Logf("real postgres not tested: set %s to run this suite on it too", PostgresVar)
	}
	return url
}
