// Package session serves collab's WebSocket protocol: it authenticates
// sessions, runs one reader and one writer per connection with a
// byte-bounded send queue, and routes each campaign's updates to this node's
// sessions in rev order through a Hub of rooms. Edits are validated here
// against the node's copy of the draft, then ordered by the Redis edit script
// (package draft), the only arbiter of first-writer-wins.
package session

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
)

// Drafts is the Redis side of drafts that the hub uses; *draft.Buffer
// implements it.
type Drafts interface {
	Open(ctx context.Context, workspace, campaign string, savedRev int64, status string, fence func(ctx context.Context, epoch string) error) (draft.Head, error)
	Head(ctx context.Context, campaign string) (draft.Head, bool, error)
	Apply(ctx context.Context, b draft.Batch) (draft.Result, error)
	ApplyMany(ctx context.Context, batches []draft.Batch) ([]draft.Result, error)
	Log(ctx context.Context, campaign string, after, upto int64) ([]draft.Entry, error)
	Build(ctx context.Context, saved *campaign.Campaign, load func(context.Context) (*campaign.Campaign, error)) (*draft.Draft, error)
	Channel(campaign string) string
	Publish(ctx context.Context, campaign string, msg []byte) error
	FeedChannel(workspace string) string
	PublishFeed(ctx context.Context, workspace, campaign string, msg []byte) error
	SetPresence(ctx context.Context, campaign string, p protocol.Editor) error
	TouchPresence(ctx context.Context, campaign string, sessions []string) error
	RemovePresence(ctx context.Context, campaign, session string) error
	Presence(ctx context.Context, campaign string) ([]protocol.Editor, error)
	// MarkClean resets the campaign's dirty mark to its oldest unsaved edit.
	MarkClean(ctx context.Context, campaign string) error
}

// Bus delivers a campaign channel's messages to this node; *draft.Bus
// implements it. A handler may keep a message but never writes to it.
type Bus interface {
	Subscribe(ctx context.Context, channel string, fn func(msg []byte)) error
	Unsubscribe(ctx context.Context, channel string)
}

// Campaigns reads saved campaigns and fences new draft epochs; the durable
// store implements it.
type Campaigns interface {
	Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error)
	FenceEpoch(ctx context.Context, workspace, id, from string, rev int64, next string) error
	// DocumentSchema is the workspace's schema for its documents (nil: none).
	DocumentSchema(ctx context.Context, workspace string) ([]byte, error)
	// ActivityResults are the canvas's kept results, which a snapshot
	// carries so that a late joiner sees the last counts.
	ActivityResults(ctx context.Context, workspace, campaign string) ([]json.RawMessage, error)
}

// Saver flushes a campaign's draft to the durable store at once; autosave
// provides it. Trigger says why.
type Saver interface {
	Save(ctx context.Context, workspace, campaign string, trigger campaign.Trigger) (version int64, err error)
}

// Handler serves one message type that the core does not know (autosave's
// and audience's commands register theirs). It runs on the session's reader.
type Handler func(ctx context.Context, s *Session, req *protocol.Request) error

// Config holds the limits and timings of sessions.
type Config struct {
	MaxMessage   int64         // bytes per frame (64 KiB); larger: close 1009
	QueueBytes   int           // send queue bound per session (1 MiB)
	RatePerSec   float64       // requests per second per session (100)
	RateBurst    int           // burst (200)
	HelloTimeout time.Duration // 5 s
	WriteTimeout time.Duration // a stuck write(2) fails after half to all of it (10 s)
	RedisTimeout time.Duration // an edit's Redis calls, so a node cut off answers unavailable (2 s)
	PingInterval time.Duration // between heartbeats, unsolicited pongs (25 s)
	// DeadPeerTimeout is how long a peer may leave what the server sent
	// unacknowledged, or fail TCP keepalive probes, before its connection
	// is dropped (the ping interval plus 15 s). See Session.writer.
	DeadPeerTimeout time.Duration
	// IdleAfter is how long a session's reader waits for a frame before
	// it hands the socket to the node's poller and exits (1 s): an idle
	// session then holds no goroutine. See idle.go.
	IdleAfter time.Duration
	// MaxWriteDelay bounds how long a busy session's writer gathers
	// messages before writing them (20 ms); see Session.writer.
	MaxWriteDelay time.Duration
	// SnapshotBytes bounds the snapshots queued for a session, apart from
	// QueueBytes, so a resync of a document near its size limit always fits
	// (8 MiB).
	SnapshotBytes int
	// MaxJoined caps the campaigns one session has joined at once (20):
	// each is a room with a document copy up to 1 MiB and a subscription.
	MaxJoined int
	Limits    campaign.Limits
	Origins   auth.Origins
	// Node names this process in logs and presence.
	Node string
}

func (c *Config) defaults() {
	if c.MaxMessage <= 0 {
		c.MaxMessage = 64 << 10
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 1 << 20
	}
	if c.RatePerSec <= 0 {
		c.RatePerSec = 100
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 200
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.MaxWriteDelay <= 0 {
		c.MaxWriteDelay = 20 * time.Millisecond
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = time.Second
	}
	if c.RedisTimeout <= 0 {
		c.RedisTimeout = 2 * time.Second
	}
	if c.DeadPeerTimeout <= 0 {
		c.DeadPeerTimeout = c.PingInterval + 15*time.Second
	}
	if c.SnapshotBytes <= 0 {
		c.SnapshotBytes = 8 << 20
	}
	if c.MaxJoined <= 0 {
		c.MaxJoined = 20
	}
	if c.Limits.MaxDocBytes <= 0 {
		c.Limits = campaign.DefaultLimits
	}
}

// Hub owns this node's sessions and rooms.
type Hub struct {
	cfg       Config
	drafts    Drafts
	bus       Bus
	campaigns Campaigns
	signer    *auth.Signer
	log       *slog.Logger

	saver       Saver
	people      People
	handlers    map[string]Handler
	presenceTTL time.Duration

	ctx    context.Context // cancelled by Shutdown: stops rooms and sessions
	cancel context.CancelFunc

	mu       sync.Mutex // guards the following fields
	rooms    map[string]*room
	sessions map[*Session]struct{}
	closing  bool

	wg             sync.WaitGroup // sessions and rooms
	heartbeatsDone chan struct{}

	schemas *schemaCache
	feed    *feed
	idle    poller // holds idle sessions' sockets; nil where there is none

	// origin tags the batches this hub sends to the edit script, unique per
	// hub (Node may repeat): the script's pub/sub message carries it, so the
	// rooms drop their own node's copy without reading it.
	origin string

	// writing counts the sessions whose writer is running: the load that
	// sets how long a busy writer gathers before its next write.
	writing atomic.Int64
}

// NewHub returns a Hub. presenceTTL is the drafts' presence TTL: rooms beat
// at a third of it.
func NewHub(cfg Config, drafts Drafts, bus Bus, campaigns Campaigns, signer *auth.Signer, presenceTTL time.Duration, log *slog.Logger) *Hub {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{cfg: cfg, drafts: drafts, bus: bus, campaigns: campaigns, signer: signer, log: log,
		handlers: map[string]Handler{}, presenceTTL: presenceTTL, ctx: ctx, cancel: cancel,
		rooms: map[string]*room{}, sessions: map[*Session]struct{}{}, heartbeatsDone: make(chan struct{}),
		origin: randid.New("n")}
	h.schemas = &schemaCache{src: campaigns, log: log, m: map[string]schemaEntry{}}
	h.feed = newFeed(h)
	if p, err := newPoller(log); err != nil {
		log.Warn("idle sessions keep a reader goroutine each", "err", err)
	} else {
		h.idle = p
	}
	// The core commands sit in the same table as the features' (hello,
	// which may come before any claims, is the dispatcher's own).
	for typ, fn := range map[string]func(*Session, *protocol.Request) error{
		"join": (*Session).join, "leave": (*Session).leave, "edit": (*Session).edit,
		"tab": (*Session).tab, "focus": (*Session).focus,
		"campaigns.watch": (*Session).campaignsWatch, "campaigns.unwatch": (*Session).campaignsUnwatch,
	} {
		h.handlers[typ] = func(_ context.Context, s *Session, req *protocol.Request) error { return fn(s, req) }
	}
	go h.heartbeats()
	go h.feed.run()
	return h
}

// heartbeats asks each session for a heartbeat every PingInterval: one
// goroutine for the node instead of a ticker per session, and each
// session's heartbeats at their own phase (set at random when it opened),
// so that ten thousand sessions do not all write on one tick. On the same
// tick it sends the readers that waited longer than IdleAfter to park.
func (h *Hub) heartbeats() {
	defer close(h.heartbeatsDone)
	step := min(h.cfg.PingInterval/20, 250*time.Millisecond)
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			idleSince := now.Add(-h.cfg.IdleAfter)
			h.mu.Lock()
			for s := range h.sessions {
				if now.After(s.nextBeat) {
					s.nextBeat = now.Add(h.cfg.PingInterval)
					s.out.requestHeartbeat()
				}
				if h.idle != nil && s.raw != nil {
					s.raw.kickIfIdle(idleSince)
				}
			}
			h.mu.Unlock()
		}
	}
}

// People records the display names sessions authenticate with, beside the
// session (a hello must not wait on the store, nor keep its call stack);
// *people.Recorder implements it.
type People interface {
	SeenSoon(ctx context.Context, workspace, user, name string)
}

// SetPeople installs the name recorder (nil: names are not recorded).
func (h *Hub) SetPeople(p People) { h.people = p }

// SetSaver installs the autosave hook (tab switches, the last session
// leaving).
func (h *Hub) SetSaver(s Saver) { h.saver = s }

// Handle registers a handler for a message type (replacing the core one of
// that type, if any). Register before serving.
func (h *Hub) Handle(typ string, fn Handler) { h.handlers[typ] = fn }

// Broadcast sends an encoded message to every session on the campaign, on
// every node.
func (h *Hub) Broadcast(ctx context.Context, campaign string, msg []byte) error {
	return h.drafts.Publish(ctx, campaign, msg)
}

// ServeHTTP upgrades GET /v1/ws. The checks that fail before the upgrade
// answer with plain HTTP: 400 without the collab.v1 subprotocol, 403 for a
// foreign Origin, 401 for a bad bearer token.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !offers(r, protocol.Subprotocol) && !offers(r, protocol.SubprotocolBatch) {
		errcode.WriteHTTP(w, errcode.New(errcode.Invalid, "the %s subprotocol is required", protocol.Subprotocol))
		return
	}
	if !h.cfg.Origins.Allowed(r) {
		errcode.WriteHTTP(w, errcode.New(errcode.Forbidden, "origin %s is not allowed", r.Header.Get("Origin")))
		return
	}
	var claims *auth.Claims
	if tok := auth.BearerToken(r); tok != "" {
		c, err := h.signer.Verify(tok)
		if err != nil {
			errcode.WriteHTTP(w, err)
			return
		}
		claims = &c
	}
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	if closing {
		errcode.WriteHTTP(w, errcode.New(errcode.Unavailable, "this node is shutting down"))
		return
	}
	hw := &hijackWriter{ResponseWriter: w, idle: h.cfg.PingInterval, dead: h.cfg.DeadPeerTimeout, write: h.cfg.WriteTimeout}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{protocol.SubprotocolBatch, protocol.Subprotocol},
		InsecureSkipVerify: true, // the Origin was checked above, against our own allow-list
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		h.log.Debug("websocket accept", "err", err)
		return
	}
	s := h.newSession(conn, hw.conn, claims)
	if s == nil {
		conn.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	// The session runs on a goroutine of its own and this handler returns:
	// the HTTP server's goroutine would otherwise keep, for the life of the
	// connection, its stack (grown through routing and the handshake), its
	// 4 KiB read and write buffers, the request and its headers — half of
	// what an idle session cost.
	go s.serve()
}

func offers(r *http.Request, proto string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == proto {
				return true
			}
		}
	}
	return false
}

func (h *Hub) newSession(conn *websocket.Conn, raw *batchConn, claims *auth.Claims) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil
	}
	s := newSession(h, conn, raw, claims)
	s.nextBeat = time.Now().Add(time.Duration(mathrand.Int64N(int64(h.cfg.PingInterval))))
	h.sessions[s] = struct{}{}
	h.wg.Add(1)
	metrics.Sessions.Inc()
	return s
}

func (h *Hub) removeSession(s *Session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
	metrics.Sessions.Dec()
	h.wg.Done()
}

// Campaigns returns the ids of the campaigns this node has rooms for: the
// ones whose edits it acknowledged, which shutdown saves first.
func (h *Hub) Campaigns() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.rooms))
	for id := range h.rooms {
		ids = append(ids, id)
	}
	return ids
}

// Parked returns how many of this node's sessions are idle with no reader
// goroutine, held by its poller (none where there is no poller).
func (h *Hub) Parked() int {
	if h.idle == nil {
		return 0
	}
	return h.idle.parkedCount()
}

// Sessions returns how many sessions are open on this node.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Shutdown stops accepting sessions, closes every session with 1001 (going
// away: clients reconnect to another node and resume), and waits for them
// and their rooms to finish, or for ctx.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	for _, s := range sessions {
		s.closeWith(websocket.StatusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		h.cancel()
		<-h.heartbeatsDone
		<-h.feed.done
		h.closeIdle()
		return nil
	case <-ctx.Done():
	}
	// Out of time: cut what is left without its close handshake, so that no
	// session outlives the backends the caller closes next.
	h.cancel()
	for _, s := range sessions {
		s.conn.CloseNow()
	}
	<-h.heartbeatsDone
	<-h.feed.done
	h.closeIdle()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.log.Error("sessions still running after shutdown", "sessions", h.Sessions())
	}
	return fmt.Errorf("session shutdown: %w", ctx.Err())
}

// closeIdle stops the poller; a session still parked gets a reader.
func (h *Hub) closeIdle() {
	if h.idle != nil {
		h.idle.close()
	}
}

// acquire returns the loaded room of c, creating it on first use.
func (h *Hub) acquire(ctx context.Context, c *campaign.Campaign) (*room, error) {
	for {
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			return nil, errcode.New(errcode.Unavailable, "this node is shutting down")
		}
		r := h.rooms[c.ID]
		if r != nil && r.closing {
			h.mu.Unlock()
			<-r.closed
			continue
		}
		if r != nil {
			r.refs++
			h.mu.Unlock()
			select {
			case <-r.ready:
			case <-ctx.Done():
				h.release(r)
				return nil, ctx.Err()
			}
			if r.err != nil {
				h.release(r)
				return nil, r.err
			}
			return r, nil
		}
		r = &room{hub: h, id: c.ID, ws: c.Workspace, channel: h.drafts.Channel(c.ID), refs: 1,
			ready: make(chan struct{}), closed: make(chan struct{}), members: map[*Session]*member{},
			pending: map[int64]committed{}, fanAuthors: map[string]struct{}{}, kick: make(chan struct{}, 1), presence: make(chan struct{}, 1),
			done: make(chan struct{})}
		h.rooms[c.ID] = r
		h.wg.Add(1)
		h.mu.Unlock()
		metrics.Rooms.Inc()
		r.err = r.load(ctx, c)
		close(r.ready)
		if r.err != nil {
			h.release(r)
			return nil, r.err
		}
		return r, nil
	}
}

// release drops a reference; the last one closes the room.
func (h *Hub) release(r *room) (last bool) {
	h.mu.Lock()
	r.refs--
	if r.refs > 0 {
		h.mu.Unlock()
		return false
	}
	r.closing = true
	h.mu.Unlock()
	r.close()
	h.mu.Lock()
	if h.rooms[r.id] == r {
		delete(h.rooms, r.id)
	}
	h.mu.Unlock()
	close(r.closed)
	metrics.Rooms.Dec()
	h.wg.Done()
	return true
}

// save asks autosave to flush at once, on a goroutine the hub waits for.
func (h *Hub) save(workspace, id string, trigger campaign.Trigger) {
	if h.saver == nil {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := h.saver.Save(ctx, workspace, id, trigger); err != nil {
			h.log.Warn("save", "campaign", id, "trigger", trigger, "err", err)
		}
	}()
}

// metricType labels a message by its type when the hub serves that type,
// so clients cannot grow the label set with made-up types.
func (h *Hub) metricType(t string) string {
	if t == "hello" || h.handlers[t] != nil {
		return t
	}
	return "other"
}
