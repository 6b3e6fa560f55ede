package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/api"
	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/autosave"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/commands"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/health"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/people"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
	"github.com/collab-dev/collab/internal/webhook/outbox"
	"github.com/collab-dev/collab/web"
)

const usage = `collab: real-time collaborative campaign editing.

Usage:
  collab [serve] [flags]                       run the server (default)
  collab token -user U -workspace W -role R   print a signed token
  collab seed -workspace W -profiles N         import N realistic demo profiles
  collab bench -url URL [flags]                load a server over real WebSockets and report
  collab webhooks replay -workspace W -from N [-to M] [-endpoint E]
                                               deliver webhook events N..M again
  collab help

Run "collab serve -h" for the settings, "collab bench -h" for the load options.
`

// run is the whole program, with the OS passed in so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := loadConfig(args, getenv, stderr)
		if err != nil {
			return err
		}
		srv, err := start(ctx, cfg, newLogger(cfg, stderr))
		if err != nil {
			return err
		}
		<-ctx.Done()
		return srv.shutdown(30 * time.Second)
	case "token":
		return tokenCmd(args, getenv, stdout, stderr)
	case "seed":
		return seedCmd(ctx, args, getenv, stdout, stderr)
	case "bench":
		return benchCmd(ctx, args, getenv, stdout, stderr)
	case "webhooks":
		return webhooksCmd(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	text := cfg.LogFormat == "text"
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			text = true
		}
	}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// server is one running node and everything it must close, in order.
type server struct {
	log       *slog.Logger
	addr      string // the address actually listened on
	http      *http.Server
	hub       *session.Hub
	flusher   *autosave.Flusher
	names     *people.Recorder
	stopRun   context.CancelFunc
	runDone   chan struct{}
	bus       *draft.Bus
	rdb       redis.UniversalClient
	mini      *miniredis.Miniredis // nil on real Redis
	store     store.Store
	signer    *auth.Signer
	served    chan error
	embedded  bool
	dir       string // COLLAB_DATA_DIR
	stopPprof func()
}

func (s *server) dataDir() string { return s.dir }

// start wires a node: stores, Redis, the session hub, the HTTP API. All
// concrete types meet here and only here.
func start(ctx context.Context, cfg *config, log *slog.Logger) (_ *server, err error) {
	s := &server{log: log, served: make(chan error, 1), dir: cfg.DataDir}
	defer func() {
		if err != nil {
			s.closeBackends()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("COLLAB_DATA_DIR %s: %w", cfg.DataDir, err)
	}

	// Durable store.
	s.store, err = openStore(ctx, cfg.DatabaseURL, cfg.DataDir, cfg.SavedWindow)
	switch {
	case cfg.DatabaseURL == "":
		log.Info("durable store: embedded SQLite (single-node default); set COLLAB_DATABASE_URL=postgres://... for PostgreSQL", "file", filepath.Join(cfg.DataDir, "collab.db"))
	case strings.HasPrefix(cfg.DatabaseURL, "sqlite:"):
		log.Info("durable store: SQLite", "url", cfg.DatabaseURL)
	default:
		log.Info("durable store: PostgreSQL")
	}
	if err != nil {
		return nil, fmt.Errorf("COLLAB_DATABASE_URL: %w", err)
	}
	if cfg.wrapStore != nil {
		s.store = cfg.wrapStore(s.store)
	}

	// Redis.
	if cfg.RedisURL == "" {
		s.mini = miniredis.NewMiniRedis()
		if err := s.mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start the in-process Redis: %w", err)
		}
		opt := &redis.Options{Addr: s.mini.Addr()}
		failFast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries)
		s.rdb = redis.NewClient(opt)
		s.embedded = true
		log.Info("drafts: in-process Redis-compatible server (single-node default, drafts not kept across restarts beyond what autosave saved); set COLLAB_REDIS_URL=redis://... for real Redis and several nodes", "addr", s.mini.Addr())
	} else {
		if s.rdb, err = redisClient(cfg.RedisURL); err != nil {
			return nil, fmt.Errorf("COLLAB_REDIS_URL: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("COLLAB_REDIS_URL: cannot reach Redis: %w", err)
		}
		log.Info("drafts: Redis", "url", redactURL(cfg.RedisURL))
	}

	// Tokens.
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		if secret, err = devSecret(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if s.signer, err = auth.NewSigner(secret); err != nil {
		return nil, fmt.Errorf("COLLAB_JWT_SECRET: %w", err)
	}

	buf := draft.New(s.rdb, draft.Options{Prefix: cfg.RedisPrefix})
	s.bus = buf.NewBus(context.Background(), log.With("subsystem", "bus"))
	host, _ := os.Hostname()
	s.hub = session.NewHub(session.Config{Origins: cfg.origins, Node: host, RatePerSec: cfg.SessionRate, RateBurst: int(2 * cfg.SessionRate)}, buf, s.bus, s.store, s.signer,
		buf.Options().PresenceTTL, log.With("subsystem", "session"))
	s.flusher = autosave.New(buf, s.store, autosave.Options{Interval: cfg.FlushInterval}, log.With("subsystem", "autosave"))
	s.hub.SetSaver(s.flusher)
	s.flusher.SetHolder(s.hub)
	s.names = people.NewRecorder(s.store, log.With("subsystem", "people"))
	s.hub.SetPeople(s.names)
	(&commands.Autosave{Flusher: s.flusher, Publisher: s.store, Staging: buf, Limits: campaign.DefaultLimits,
		Log: log.With("subsystem", "autosave")}).Register(s.hub)
	run := runner.New(s.store, log.With("subsystem", "audience"))
	catalog := runner.NewCatalog(s.store)
	(&commands.Audiences{Runner: run, Store: s.store, Catalog: catalog, Log: log.With("subsystem", "audience")}).Register(s.hub)
	schedLog := log.With("subsystem", "schedule")
	sched := &runner.Scheduler{Runner: run, Store: s.store, Log: schedLog,
		Saved: func(ctx context.Context, ws, id, activity string, res store.AudienceSaved) {
			msg := protocol.Encode(nil, commands.AudienceSavedMessage(id, activity, res, "schedule"))
			if err := s.store.SaveActivityResult(ctx, ws, id, activity, "save", msg); err != nil {
				schedLog.Warn("keep a scheduled save's result", "campaign", id, "err", err)
			}
			if err := s.hub.Broadcast(ctx, id, msg); err != nil {
				schedLog.Warn("announce scheduled save", "campaign", id, "err", err)
			}
		}}
	mon := health.New(ctx, time.Second, time.Second,
		health.Check{Name: "redis", Ping: func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }, Gauge: metrics.RedisUp},
		health.Check{Name: "store", Ping: s.store.Ping, Gauge: metrics.StoreUp})
	hooks := outbox.New(s.store, outbox.Options{}, log.With("subsystem", "webhooks"))
	runCtx, stopRun := context.WithCancel(context.Background())
	s.stopRun, s.runDone = stopRun, make(chan struct{})
	go func() {
		defer close(s.runDone)
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); sched.Run(runCtx) }()
		go func() { defer wg.Done(); mon.Run(runCtx) }()
		go func() { defer wg.Done(); hooks.Run(runCtx) }()
		s.flusher.Run(runCtx)
		wg.Wait()
	}()

	devWorkspace := ""
	if len(cfg.JWTSecret) == 0 {
		devWorkspace = "demo"
	}
	handler := api.New(api.Deps{
		DevWorkspace: devWorkspace,
		Store:        s.store, Signer: s.signer, Status: buf, Sessions: s.hub, Web: web.Handler(),
		Restorer: &draft.Restorer{Drafts: buf, Store: s.store}, Saver: s.flusher, People: s.names, Feed: s.hub, Catalog: catalog,
		Limits: campaign.DefaultLimits, Log: log.With("subsystem", "api"),
		Ready: []api.Checker{
			{Name: "redis", Check: func(context.Context) error { return mon.Err("redis") }},
			{Name: "store", Check: func(context.Context) error { return mon.Err("store") }},
		},
	})
	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return nil, fmt.Errorf("COLLAB_PPROF_ADDR %s: %w", cfg.PprofAddr, err)
		}
		s.stopPprof = stop
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("COLLAB_ADDR %s: %w", cfg.Addr, err)
	}
	s.addr = ln.Addr().String()
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { s.served <- s.http.Serve(ln) }()
	log.Info("collab listening", "addr", s.addr)
	if len(cfg.JWTSecret) == 0 {
		tok, _ := s.signer.Sign(auth.Claims{User: "demo", Name: "Demo User", Workspace: "demo", Role: auth.Admin}, 7*24*time.Hour)
		reach := "this machine only (loopback); set COLLAB_ADDR=:8080 to listen on every interface, and anyone who reaches it can sign in as admin"
		if host, _, _ := net.SplitHostPort(s.addr); !isLoopback(host) {
			reach = "the network (COLLAB_ADDR was given): anyone who reaches this address can sign in by name as admin"
		}
		log.Info("development secret in use; open the editor as the demo user", "url", "http://"+browserAddr(s.addr)+"/#token="+tok, "reachable_from", reach)
	}
	return s, nil
}

// shutdown stops accepting, closes sessions (1001: clients reconnect to
// another node), then closes Redis and the store.
func (s *server) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.log.Info("shutting down")
	var errs []error
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	rooms := s.hub.Campaigns()
	if err := s.hub.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	// Sessions are gone (each last leave saved its campaign); stop the timer
	// and save whatever is still dirty, this node's rooms first, before
	// Redis and the store close. The final save has a budget of its own:
	// slow sessions must not leave acknowledged edits unsaved.
	s.stopRun()
	<-s.runDone
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), timeout)
	defer cancelFlush()
	if err := s.flusher.FlushAll(flushCtx, campaign.TriggerShutdown, rooms...); err != nil {
		errs = append(errs, fmt.Errorf("final autosave: %w", err))
	}
	s.names.Wait() // the names being written use the store
	s.closeBackends()
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	s.log.Info("stopped")
	return errors.Join(errs...)
}

func (s *server) closeBackends() {
	if s.stopPprof != nil {
		s.stopPprof()
	}
	if s.stopRun != nil {
		// The timer, scheduler and monitor use the backends: they stop first.
		s.stopRun()
		<-s.runDone
	}
	if s.bus != nil {
		s.bus.Close()
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
	if s.mini != nil {
		s.mini.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

func redisClient(raw string) (redis.UniversalClient, error) {
	for _, scheme := range []string{"redis-cluster://", "redis-sentinel://"} {
		rest, ok := strings.CutPrefix(raw, scheme)
		if !ok {
			continue
		}
		// go-redis takes several hosts as addr= parameters.
		hosts, query, _ := strings.Cut(rest, "?")
		hosts, db, _ := strings.Cut(hosts, "/")
		addrs := strings.Split(hosts, ",")
		u := "redis://" + addrs[0]
		if db != "" {
			u += "/" + db
		}
		u += "?"
		for _, a := range addrs[1:] {
			u += "addr=" + a + "&"
		}
		u += query
		if scheme == "redis-cluster://" {
			opt, err := redis.ParseClusterURL(u)
			if err != nil {
				return nil, err
			}
			failFast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries)
			return redis.NewClusterClient(opt), nil
		}
		opt, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, err
		}
		if opt.MasterName == "" {
			return nil, errors.New("redis-sentinel:// needs ?master_name=NAME")
		}
		failFast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries)
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	failFast(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries)
	return redis.NewClient(opt), nil
}

// failFast bounds how long a Redis that does not answer (a node cut off,
// packets dropped) holds a caller: go-redis's defaults (5 s dial, 3 s read,
// 3 retries) add up to about ten seconds of silence before an edit can be
// answered "unavailable". Settings given in the URL are kept.
func failFast(dial, read, write, pool *time.Duration, retries *int) {
	for _, d := range []*time.Duration{dial, read, write, pool} {
		if *d == 0 {
			*d = 2 * time.Second
		}
	}
	if *retries == 0 {
		*retries = 1 // the edit script is safe to retry: it dedups every call
	}
}
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func browserAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// devSecret returns the data dir's development secret, making it once.
func devSecret(dir string) ([]byte, error) {
	if b, err := existingDevSecret(dir); err == nil {
		return b, nil
	}
	file := filepath.Join(dir, devSecretFile)
	b := make([]byte, 32)
	rand.Read(b)
	secret := []byte(hex.EncodeToString(b))
	if err := os.WriteFile(file, secret, 0o600); err != nil {
		return nil, fmt.Errorf("write development secret: %w", err)
	}
	return secret, nil
}

const devSecretFile = "dev-jwt-secret"

// existingDevSecret reads the data dir's development secret without making
// one: a client of a running server needs the server's, not a new one.
func existingDevSecret(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, devSecretFile))
	if err != nil {
		return nil, err
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("%s: development secret too short", filepath.Join(dir, devSecretFile))
	}
	return b, nil
}

func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collab token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user id (sub)")
	name := fs.String("name", "", "display name")
	ws := fs.String("workspace", "", "workspace id (ws)")
	role := fs.String("role", "editor", "viewer, editor or admin")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime (0: no exp)")
	secretFlag := fs.String("jwt-secret", getenv("COLLAB_JWT_SECRET"), "secret (COLLAB_JWT_SECRET); empty: the data dir's development secret")
	dataDir := fs.String("data-dir", or(getenv("COLLAB_DATA_DIR"), "./collab-data"), "data dir (COLLAB_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" || *ws == "" {
		return errors.New("token: -user and -workspace are required")
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("token: -role: %w", err)
	}
	secret := []byte(*secretFlag)
	if len(secret) == 0 {
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return err
		}
		if secret, err = devSecret(*dataDir); err != nil {
			return err
		}
	}
	signer, err := auth.NewSigner(secret)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, err := signer.Sign(auth.Claims{User: *user, Name: or(*name, *user), Workspace: *ws, Role: r}, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// seedCmd imports demo profiles into the configured store (the same
// COLLAB_DATABASE_URL and COLLAB_DATA_DIR as serve).
func seedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collab seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ws := fs.String("workspace", "demo", "workspace to fill")
	n := fs.Int("profiles", 10_000, "how many profiles")
	seed := fs.Uint64("seed", 1, "random seed: the same seed makes the same profiles")
	dbURL := fs.String("database-url", getenv("COLLAB_DATABASE_URL"), "as for serve (COLLAB_DATABASE_URL)")
	dataDir := fs.String("data-dir", or(getenv("COLLAB_DATA_DIR"), "./collab-data"), "as for serve (COLLAB_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("seed: -profiles must be at least 1")
	}
	st, err := openDB(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	rep, err := st.ImportProfiles(ctx, *ws, audience.Seed(*n, *seed))
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	d := time.Since(start)
	fmt.Fprintf(stdout, "imported %d profiles into workspace %s in %v (%.0f/s)\n", rep.Imported, *ws, d.Round(time.Millisecond), float64(rep.Imported)/d.Seconds())
	return nil
}

// openStore opens the durable store a database URL names (empty: the
// embedded SQLite file of the data dir).
func openStore(ctx context.Context, dbURL, dataDir string, savedWindow time.Duration) (store.Store, error) {
	db, err := openDB(ctx, dbURL, dataDir)
	if err != nil {
		return nil, err
	}
	db.SetSavedWindow(savedWindow)
	return db, nil
}

func openDB(ctx context.Context, dbURL, dataDir string) (*sqlstore.DB, error) {
	switch {
	case dbURL == "":
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		return sqlstore.OpenSQLite(ctx, filepath.Join(dataDir, "collab.db"))
	case strings.HasPrefix(dbURL, "sqlite:"):
		return sqlstore.OpenSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//"))
	default:
		return sqlstore.OpenPostgres(ctx, dbURL)
	}
}

// webhooksCmd replays a range of webhook events from the configured store:
// their deliveries become due again, with their original idempotency keys,
// and every node's deliverer sends them.
func webhooksCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		return errors.New("webhooks: usage: collab webhooks replay -workspace W -from N [-to M] [-endpoint E]")
	}
	fs := flag.NewFlagSet("collab webhooks replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ws := fs.String("workspace", "", "the workspace whose deliveries to replay")
	from := fs.Int64("from", 0, "first event id (the number in evt_N)")
	to := fs.Int64("to", 0, "last event id; 0: the same as -from")
	endpoint := fs.String("endpoint", "", "only this endpoint (wh_...); empty: every endpoint of the workspace")
	dbURL := fs.String("database-url", getenv("COLLAB_DATABASE_URL"), "as for serve (COLLAB_DATABASE_URL)")
	dataDir := fs.String("data-dir", or(getenv("COLLAB_DATA_DIR"), "./collab-data"), "as for serve (COLLAB_DATA_DIR)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *to == 0 {
		*to = *from
	}
	if *ws == "" || *from < 1 || *to < *from {
		return errors.New("webhooks replay: need -workspace and 1 <= -from <= -to")
	}
	st, err := openDB(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Replay(ctx, *ws, *from, *to, *endpoint)
	if err != nil {
		return fmt.Errorf("webhooks replay: %w", err)
	}
	fmt.Fprintf(stdout, "%d deliveries of events %d..%d queued again\n", n, *from, *to)
	return nil
}
