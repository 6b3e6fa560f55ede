// Package sessiontest runs collab nodes and WebSocket clients for tests:
// a Cluster is one Redis and one store shared by any number of nodes.
package sessiontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

var testSecret = []byte("test-secret-test-secret-test-secret")

// cluster is one Redis and one store shared by any number of nodes, as in
// production.
type Cluster struct {
	T      testing.TB
	Redis  testenv.RedisBackend
	Store  store.Store
	Signer *auth.Signer
	Opts   draft.Options
}

func NewCluster(t testing.TB, be testenv.RedisBackend, opts draft.Options) *Cluster {
	t.Helper()
	// The real Redis runs with the real PostgreSQL, the embedded Redis with
	// the embedded SQLite: the two pairs collab runs on.
	var st store.Store
	var err error
	if url := ""; be.Name != "embedded" {
		if url = testenv.PostgresIfSet(t); url != "" {
			st, err = sqlstore.OpenPostgres(context.Background(), url)
		}
	}
	if st == nil && err == nil {
		st, err = sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "collab.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, _ := auth.NewSigner(testSecret)
	opts.Prefix = storetest.ID("t")
	return &Cluster{T: t, Redis: be, Store: st, Signer: signer, Opts: opts}
}

// RealCluster is real Redis with real PostgreSQL, for benchmarks: it skips
// without them (COLLAB_TEST_REDIS_URL, COLLAB_TEST_POSTGRES_URL).
func RealCluster(tb testing.TB, opts draft.Options) *Cluster {
	tb.Helper()
	url := testenv.Redis(tb)
	testenv.Postgres(tb)
	return NewCluster(tb, testenv.RedisBackend{Name: "redis", URL: url}, opts)
}

// ForEachRedis runs fn on the embedded Redis and, when configured, real Redis.
func ForEachRedis(t *testing.T, opts draft.Options, fn func(t *testing.T, c *Cluster)) {
	for _, be := range testenv.RedisBackends(t) {
		t.Run(be.Name, func(t *testing.T) { fn(t, NewCluster(t, be, opts)) })
	}
}

type Node struct {
	Hub *session.Hub
	Srv *httptest.Server
	Buf *draft.Buffer
	Bus *draft.Bus
	RDB redis.UniversalClient
	// Stop shuts the node down gracefully (also done at cleanup).
	Stop func()

	stops []func()
}

func (c *Cluster) Node(cfg session.Config, setup ...func(*Node)) *Node {
	c.T.Helper()
	rdb := c.Redis.Client(c.T)
	buf := draft.New(rdb, c.Opts)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus := buf.NewBus(context.Background(), log)
	if cfg.RatePerSec == 0 {
		cfg.RatePerSec, cfg.RateBurst = 1000, 1000
	}
	hub := session.NewHub(cfg, buf, bus, c.Store, c.Signer, buf.Options().PresenceTTL, log)
	srv := httptest.NewServer(hub)
	n := &Node{Hub: hub, Srv: srv, Buf: buf, Bus: bus, RDB: rdb}
	for _, fn := range setup {
		fn(n)
	}
	var once bool
	n.Stop = func() {
		if once {
			return
		}
		once = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hub.Shutdown(ctx)
		srv.Close()
		for _, stop := range n.stops {
			stop()
		}
		bus.Close()
	}
	c.T.Cleanup(n.Stop)
	return n
}

func (c *Cluster) Token(user, ws string, role auth.Role) string {
	tok, err := c.Signer.Sign(auth.Claims{User: user, Name: strings.ToUpper(user[:1]) + user[1:], Workspace: ws, Role: role}, time.Hour)
	if err != nil {
		c.T.Fatal(err)
	}
	return tok
}

func (c *Cluster) Campaign(ws, doc string) string {
	c.T.Helper()
	cp := &campaign.Campaign{ID: storetest.ID("c_"), Workspace: ws, Name: "Spring", Draft: json.RawMessage(doc), UpdatedBy: "u"}
	if err := c.Store.CreateCampaign(context.Background(), cp); err != nil {
		c.T.Fatal(err)
	}
	return cp.ID
}

// client is a test WebSocket client.
type Client struct {
	T    testing.TB
	Conn *websocket.Conn
	In   chan map[string]any
	Err  chan error
	// Frames counts the frames received (a batched frame holds several
	// messages).
	Frames atomic.Int64
}

func Dial(t testing.TB, n *Node, header http.Header) (*Client, *http.Response, error) {
	t.Helper()
	return DialProtocols(t, n, header, protocol.Subprotocol)
}

// DialProtocols dials offering the given subprotocols (collab.v1.batch
// first for batched frames). The client splits a batched frame into its
// messages; Frames counts the frames.
func DialProtocols(t testing.TB, n *Node, header http.Header, protocols ...string) (*Client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(n.Srv.URL, "http")
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(8 << 20)
	cl := &Client{T: t, Conn: conn, In: make(chan map[string]any, 10000), Err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				cl.Err <- err
				close(cl.In)
				return
			}
			cl.Frames.Add(1)
			for _, line := range bytes.Split(data, []byte{'\n'}) {
				var m map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					cl.Err <- fmt.Errorf("bad frame %s: %w", data, err)
					close(cl.In)
					return
				}
				cl.In <- m
			}
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return cl, resp, nil
}

// connect dials and authenticates with hello.
func (c *Cluster) Connect(n *Node, user, ws string, role auth.Role) *Client {
	c.T.Helper()
	return c.ConnectB(c.T, n, user, ws, role)
}

// ConnectB is Connect for any test or benchmark.
func (c *Cluster) ConnectB(tb testing.TB, n *Node, user, ws string, role auth.Role) *Client {
	tb.Helper()
	cl, _, err := Dial(tb, n, nil)
	if err != nil {
		c.T.Fatal(err)
	}
	cl.Send(map[string]any{"type": "hello", "token": c.Token(user, ws, role)})
	cl.Expect("welcome")
	return cl
}

func (cl *Client) Send(m map[string]any) {
	cl.T.Helper()
	b, _ := json.Marshal(m)
	cl.SendRaw(string(b))
}

func (cl *Client) SendRaw(s string) {
	cl.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		cl.T.Fatalf("send: %v", err)
	}
}

// next returns the next message that is not a presence push.
func (cl *Client) Next() map[string]any {
	cl.T.Helper()
	for {
		select {
		case m, ok := <-cl.In:
			if !ok {
				cl.T.Fatalf("connection closed: %v", <-cl.Err)
			}
			if m["type"] == "presence" {
				continue
			}
			return m
		case <-time.After(5 * time.Second):
			cl.T.Fatal("no message within 5s")
		}
	}
}

func (cl *Client) Expect(typ string) map[string]any {
	cl.T.Helper()
	m := cl.Next()
	if m["type"] != typ {
		cl.T.Fatalf("want %s, got %v", typ, m)
	}
	return m
}

// expectPresence waits for a presence push satisfying ok.
func (cl *Client) ExpectPresence(ok func(editors []any) bool) {
	cl.T.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, open := <-cl.In:
			if !open {
				cl.T.Fatalf("closed: %v", <-cl.Err)
			}
			if m["type"] == "presence" && ok(m["editors"].([]any)) {
				return
			}
		case <-deadline:
			cl.T.Fatal("presence never matched")
		}
	}
}

// quiet asserts that nothing but presence arrives for d.
func (cl *Client) Quiet(d time.Duration) {
	cl.T.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-cl.In:
			if !ok {
				return
			}
			if m["type"] != "presence" {
				cl.T.Fatalf("unexpected message %v", m)
			}
		case <-deadline:
			return
		}
	}
}

// Pair creates a campaign of doc in workspace w1 and joins it from n with
// two sessions: ann, an editor, and a teammate (user mate, of role).
func (c *Cluster) Pair(n *Node, doc, mate string, role auth.Role) (id string, a, b *Client) {
	c.T.Helper()
	id = c.Campaign("w1", doc)
	a, b = c.Connect(n, "ann", "w1", auth.Editor), c.Connect(n, mate, "w1", role)
	a.Join(id)
	b.Join(id)
	return id, a, b
}

func (cl *Client) Join(campaign string) map[string]any {
	cl.T.Helper()
	cl.Send(map[string]any{"type": "join", "campaign": campaign})
	return cl.Expect("snapshot")
}

func (cl *Client) Edit(campaign string, base int64, ops string, extra ...any) {
	cl.T.Helper()
	m := map[string]any{"type": "edit", "campaign": campaign, "base": base, "ops": json.RawMessage(ops)}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	cl.Send(m)
}

// Num reads a JSON number as an int64.
func Num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// JSONOf encodes v.
func JSONOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// OnStop registers fn to run when the node stops, after its hub.
func (n *Node) OnStop(fn func()) { n.stops = append(n.stops, fn) }

// URL is the node's base HTTP URL.
func (n *Node) URL() string { return n.Srv.URL }

// Keys lists the keys matching pattern on every server: on a Redis
// Cluster, KEYS answers for one node only.
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) []string {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		keys, _ := rdb.Keys(ctx, pattern).Result()
		return keys
	}
	var mu sync.Mutex
	var keys []string
	cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		k, err := c.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	})
	return keys
}
