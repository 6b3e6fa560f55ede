package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/store"
)

// config is every setting of `collab serve`. Each is an environment variable
// and a flag of the same meaning; a flag wins over the variable.
type config struct {
	Addr           string
	RedisURL       string
	DatabaseURL    string
	DataDir        string
	JWTSecret      string
	AllowedOrigins string
	FlushInterval  time.Duration
	RedisPrefix    string
	LogLevel       string
	LogFormat      string
	PprofAddr      string
	SessionRate    float64
	// SavedWindow is the campaign.saved webhook's window: at most one
	// event per campaign per window.
	SavedWindow time.Duration

	origins     auth.Origins
	sessionRate string

	// wrapStore, set only by tests, wraps the durable store once opened:
	// the browser tests slow a run down this way to cancel it.
	wrapStore func(store.Store) store.Store
}

type setting struct {
	env, flag, def, help string
	dst                  *string
}

func (c *config) settings() []setting {
	return []setting{
		{"COLLAB_ADDR", "addr", "", "address to listen on; empty: :8080, or 127.0.0.1:8080 on the development secret", &c.Addr},
		{"COLLAB_REDIS_URL", "redis-url", "", "Redis URL (redis://, rediss://, redis-cluster://h1:p1,h2:p2, or redis-sentinel://s1:p1,s2:p2?master_name=M); empty: an in-process Redis-compatible server", &c.RedisURL},
		{"COLLAB_DATABASE_URL", "database-url", "", "postgres://... for PostgreSQL; empty: an embedded SQLite file in the data dir", &c.DatabaseURL},
		{"COLLAB_DATA_DIR", "data-dir", "./collab-data", "where the embedded database and the development secret live", &c.DataDir},
		{"COLLAB_JWT_SECRET", "jwt-secret", "", "HS256 secret for tokens (16+ bytes); empty: a development secret kept in the data dir", &c.JWTSecret},
		{"COLLAB_ALLOWED_ORIGINS", "allowed-origins", "", "comma-separated browser origins allowed besides the server's own", &c.AllowedOrigins},
		{"COLLAB_REDIS_PREFIX", "redis-prefix", "collab", "prefix of every Redis key and channel", &c.RedisPrefix},
		{"COLLAB_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", &c.LogLevel},
		{"COLLAB_LOG_FORMAT", "log-format", "auto", "json, text, or auto (text on a terminal, JSON otherwise)", &c.LogFormat},
		{"COLLAB_SESSION_RATE", "session-rate", "100", "requests per second one session may send (bursts of twice that); over it: rate_limited", &c.sessionRate},
		{"COLLAB_PPROF_ADDR", "pprof-addr", "", "loopback host:port serving net/http/pprof; empty: none", &c.PprofAddr},
	}
}

// loadConfig reads the environment, then the flags, then validates; every
// error names the setting at fault.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("collab serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range c.settings() {
		v := getenv(s.env)
		if v == "" {
			v = s.def
		}
		fs.StringVar(s.dst, s.flag, v, s.help+" ("+s.env+")")
	}
	flushDef := getenv("COLLAB_FLUSH_INTERVAL")
	if flushDef == "" {
		flushDef = "2s"
	}
	flush := fs.String("flush-interval", flushDef, "autosave interval while a draft is dirty, a Go duration (COLLAB_FLUSH_INTERVAL)")
	windowDef := getenv("COLLAB_WEBHOOK_SAVED_WINDOW")
	if windowDef == "" {
		windowDef = "30s"
	}
	window := fs.String("webhook-saved-window", windowDef, "at most one campaign.saved webhook per campaign per this window, a Go duration; 0: one per save (COLLAB_WEBHOOK_SAVED_WINDOW)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	bad := func(name string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	d, err := time.ParseDuration(*flush)
	switch {
	case err != nil:
		bad("COLLAB_FLUSH_INTERVAL", "%q is not a Go duration such as 2s or 500ms", *flush)
	case d < 50*time.Millisecond || d > time.Hour:
		bad("COLLAB_FLUSH_INTERVAL", "%s is outside 50ms..1h", d)
	}
	c.FlushInterval = d
	if w, err := time.ParseDuration(*window); err != nil || w < 0 || w > 24*time.Hour {
		bad("COLLAB_WEBHOOK_SAVED_WINDOW", "%q is not a Go duration between 0s and 24h", *window)
	} else {
		c.SavedWindow = w
	}
	if r, err := strconv.ParseFloat(c.sessionRate, 64); err != nil || r < 1 || r > 1e6 {
		bad("COLLAB_SESSION_RATE", "%q is not a number of requests per second between 1 and 1000000", c.sessionRate)
	} else {
		c.SessionRate = r
	}
	if c.Addr == "" {
		// The development secret comes with a sign-in that turns any name
		// into an admin token: unless told otherwise, only this machine may
		// reach it.
		c.Addr = ":8080"
		if c.JWTSecret == "" {
			c.Addr = "127.0.0.1:8080"
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("COLLAB_ADDR", "%q is not host:port (for example :8080)", c.Addr)
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-cluster" && u.Scheme != "redis-sentinel") {
			bad("COLLAB_REDIS_URL", "want redis://host:port/db, rediss://..., redis-cluster://host1:port,host2:port, or redis-sentinel://host1:port,host2:port?master_name=NAME")
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite:") {
		bad("COLLAB_DATABASE_URL", "want postgres://user:pass@host:port/db, sqlite:/path/to/file.db, or empty for the embedded default")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 16 {
		bad("COLLAB_JWT_SECRET", "must be at least 16 bytes")
	}
	if c.DataDir == "" {
		bad("COLLAB_DATA_DIR", "must not be empty")
	}
	if c.origins, err = auth.ParseOrigins(c.AllowedOrigins); err != nil {
		bad("COLLAB_ALLOWED_ORIGINS", "%v", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("COLLAB_LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		bad("COLLAB_LOG_FORMAT", "%q is not json, text or auto", c.LogFormat)
	}
	if c.PprofAddr != "" {
		if host, _, err := net.SplitHostPort(c.PprofAddr); err != nil || !isLoopback(host) {
			bad("COLLAB_PPROF_ADDR", "%q is not a loopback host:port (for example 127.0.0.1:6060)", c.PprofAddr)
		}
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{} ") {
		bad("COLLAB_REDIS_PREFIX", "must be non-empty, without braces or spaces")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("bad settings:\n  %w", errors.Join(errs...))
	}
	return c, nil
}
