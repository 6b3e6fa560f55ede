package session

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

var testSecret = []byte("test-secret-test-secret-test-secret")

// cluster is one Redis and one store shared by any number of nodes, as in
// production.
type cluster struct {
	t      testing.TB
	redis  testenv.RedisBackend
	prefix string
	store  store.Store
	signer *auth.Signer
	opts   draft.Options
}

func newCluster(t testing.TB, be testenv.RedisBackend, opts draft.Options) *cluster {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "collab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, _ := auth.NewSigner(testSecret)
	opts.Prefix = storetest.ID("t")
	return &cluster{t: t, redis: be, store: st, signer: signer, opts: opts}
}

// forEachRedis runs fn on the embedded Redis and, when configured, real Redis.
func forEachRedis(t *testing.T, opts draft.Options, fn func(t *testing.T, c *cluster)) {
	for _, be := range testenv.RedisBackends(t) {
		t.Run(be.Name, func(t *testing.T) { fn(t, newCluster(t, be, opts)) })
	}
}

type node struct {
	hub    *Hub
	srv    *httptest.Server
	buf    *draft.Buffer
	bus    *draft.Bus
	rdb    redis.UniversalClient
	cancel func()
}

func (c *cluster) node(cfg Config) *node {
	c.t.Helper()
	rdb := c.redis.Client(c.t)
	buf := draft.New(rdb, c.opts)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus := buf.NewBus(context.Background(), log)
	if cfg.RatePerSec == 0 {
		cfg.RatePerSec, cfg.RateBurst = 1000, 1000
	}
	hub := NewHub(cfg, buf, bus, c.store, c.signer, buf.Options().PresenceTTL, log)
	srv := httptest.NewServer(hub)
	n := &node{hub: hub, srv: srv, buf: buf, bus: bus, rdb: rdb}
	var once bool
	n.cancel = func() {
		if once {
			return
		}
		once = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hub.Shutdown(ctx)
		srv.Close()
		bus.Close()
	}
	c.t.Cleanup(n.cancel)
	return n
}

func (c *cluster) token(user, ws string, role auth.Role) string {
	tok, err := c.signer.Sign(auth.Claims{User: user, Name: strings.ToUpper(user[:1]) + user[1:], Workspace: ws, Role: role}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

func (c *cluster) campaign(ws, doc string) string {
	c.t.Helper()
	cp := &campaign.Campaign{ID: storetest.ID("c_"), Workspace: ws, Name: "Spring", Draft: json.RawMessage(doc), UpdatedBy: "u"}
	if err := c.store.CreateCampaign(context.Background(), cp); err != nil {
		c.t.Fatal(err)
	}
	return cp.ID
}

// client is a test WebSocket client.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	in   chan map[string]any
	err  chan error
}

func dial(t *testing.T, n *node, header http.Header) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(n.srv.URL, "http")
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{Subprotocol}, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(8 << 20)
	cl := &client{t: t, conn: conn, in: make(chan map[string]any, 10000), err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				cl.err <- err
				close(cl.in)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				cl.err <- fmt.Errorf("bad frame %s: %w", data, err)
				close(cl.in)
				return
			}
			cl.in <- m
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return cl, resp, nil
}

// connect dials and authenticates with hello.
func (c *cluster) connect(n *node, user, ws string, role auth.Role) *client {
	c.t.Helper()
	cl, _, err := dial(c.t.(*testing.T), n, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	cl.send(map[string]any{"type": "hello", "token": c.token(user, ws, role)})
	cl.expect("welcome")
	return cl
}

func (cl *client) send(m map[string]any) {
	cl.t.Helper()
	b, _ := json.Marshal(m)
	cl.sendRaw(string(b))
}

func (cl *client) sendRaw(s string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		cl.t.Fatalf("send: %v", err)
	}
}

// next returns the next message that is not a presence push.
func (cl *client) next() map[string]any {
	cl.t.Helper()
	for {
		select {
		case m, ok := <-cl.in:
			if !ok {
				cl.t.Fatalf("connection closed: %v", <-cl.err)
			}
			if m["type"] == "presence" {
				continue
			}
			return m
		case <-time.After(5 * time.Second):
			cl.t.Fatal("no message within 5s")
		}
	}
}

func (cl *client) expect(typ string) map[string]any {
	cl.t.Helper()
	m := cl.next()
	if m["type"] != typ {
		cl.t.Fatalf("want %s, got %v", typ, m)
	}
	return m
}

// expectPresence waits for a presence push satisfying ok.
func (cl *client) expectPresence(ok func(editors []any) bool) {
	cl.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, open := <-cl.in:
			if !open {
				cl.t.Fatalf("closed: %v", <-cl.err)
			}
			if m["type"] == "presence" && ok(m["editors"].([]any)) {
				return
			}
		case <-deadline:
			cl.t.Fatal("presence never matched")
		}
	}
}

// quiet asserts that nothing but presence arrives for d.
func (cl *client) quiet(d time.Duration) {
	cl.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-cl.in:
			if !ok {
				return
			}
			if m["type"] != "presence" {
				cl.t.Fatalf("unexpected message %v", m)
			}
		case <-deadline:
			return
		}
	}
}

func (cl *client) join(campaign string) map[string]any {
	cl.t.Helper()
	cl.send(map[string]any{"type": "join", "campaign": campaign})
	return cl.expect("snapshot")
}

func (cl *client) edit(campaign string, base int64, ops string, extra ...any) {
	cl.t.Helper()
	m := map[string]any{"type": "edit", "campaign": campaign, "base": base, "ops": json.RawMessage(ops)}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	cl.send(m)
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
