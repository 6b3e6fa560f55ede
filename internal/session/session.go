package session

import (
	"bytes"
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
)

// Session is one WebSocket connection. Its reader goroutine decodes and
// dispatches requests one at a time (so a session's edits are ordered); its
// writer goroutine drains the send queue, each pass in one write(2).
type Session struct {
	hub  *Hub
	conn *websocket.Conn
	raw  *batchConn
	id   string
	// batched is set on the batch subprotocol: a pass's messages share frames.
	batched bool
	out     *queue

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc

	// Owned by the reader goroutine.
	claims   *auth.Claims
	limiter  *rate.Limiter
	joined   []*member // at most MaxJoined; a slice costs an idle session less than a map
	watching bool      // watches its workspace's campaign list (campaigns.watch)

	authed     atomic.Bool  // set once hello (or the bearer header) succeeded
	expires    atomic.Int64 // the token's exp (Unix ns), 0 for none
	expiry     *time.Timer  // ends the session when the token expires
	nextBeat   time.Time    // guarded by hub.mu
	helloTimer *time.Timer  // closes a session that sends no hello in time
	parkedAs   uint64       // the poller's token while parked; guarded by the poller
	closeOnce  sync.Once
	wg         sync.WaitGroup // helper goroutines (close handshakes, pings, async commands)
	writers    sync.WaitGroup // the writer goroutine, while it runs

	// Owned by whichever writer goroutine runs (the queue's lock hands it
	// over): what a gathering writer waits on.
	hurry chan struct{}
	wait  *time.Timer
}

func newSession(h *Hub, conn *websocket.Conn, raw *batchConn, claims *auth.Claims) *Session {
	ctx, cancel := context.WithCancel(h.ctx)
	conn.SetReadLimit(h.cfg.MaxMessage)
	s := &Session{hub: h, conn: conn, raw: raw, id: randid.New("s"), batched: conn.Subprotocol() == protocol.SubprotocolBatch,
		ctx: ctx, cancel: cancel,
		limiter: rate.NewLimiter(rate.Limit(h.cfg.RatePerSec), h.cfg.RateBurst)}
	s.out = newQueue(h.cfg.QueueBytes, h.cfg.SnapshotBytes, func() {
		s.writers.Add(1)
		go s.writer()
	})
	if claims != nil {
		s.authenticate(claims)
	}
	return s
}

// ID is the session's id, unique across nodes.
func (s *Session) ID() string { return s.id }

// Claims returns who the session speaks for (zero before authentication).
func (s *Session) Claims() auth.Claims {
	if s.claims == nil {
		return auth.Claims{}
	}
	return *s.claims
}

// Context is cancelled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Send queues an encoded message; a full queue closes the session as too
// slow and reports false.
func (s *Session) Send(msg []byte) bool { return s.send(outMsg{b: msg}) }

func (s *Session) send(m outMsg) bool {
	if s.out.push(m) {
		return true
	}
	if s.ctx.Err() == nil && !s.out.finishing() {
		metrics.SlowClosed.Inc()
		s.hub.log.Info("session too slow, closing", "session", s.id)
		s.closeWith(websocket.StatusCode(protocol.CloseTooSlow), "too slow: rejoin with since")
	}
	return false
}

// Reply queues a reply of the given type to req.
func (s *Session) Reply(req *protocol.Request, m protocol.Message) {
	s.Send(protocol.Encode(req.Ref, m))
}

// ReplyError queues an error reply to req.
func (s *Session) ReplyError(req *protocol.Request, err error) {
	var ref []byte
	if req != nil {
		ref = req.Ref
	}
	s.replyError(ref, err)
}

func (s *Session) replyError(ref []byte, err error) {
	code := errcode.Of(err)
	metrics.Errors.WithLabelValues(string(code)).Inc()
	if code == errcode.Internal {
		s.hub.log.Error("request failed", "session", s.id, "err", err)
	}
	s.Send(protocol.Encode(ref, protocol.ErrorOf(err)))
}

// Go runs fn beside the reader (for commands that must not hold up the
// session's other traffic); the session waits for it before ending.
func (s *Session) Go(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// closeWith ends the session with a close code. It is safe from any
// goroutine and never blocks: the close handshake runs on its own.
func (s *Session) closeWith(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		if s.raw != nil {
			s.raw.stopWaits()
		}
		s.out.close()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn.Close(code, reason)
		}()
		s.cancel()
	})
}

// authenticate installs the session's claims (hello, a bearer header, or a
// renewal) and arms the expiry timer on the token's exp.
func (s *Session) authenticate(c *auth.Claims) {
	s.claims = c
	s.authed.Store(true)
	if c.Expires.IsZero() {
		s.expires.Store(0)
		if s.expiry != nil {
			s.expiry.Stop()
		}
		return
	}
	s.expires.Store(c.Expires.UnixNano())
	d := time.Until(c.Expires)
	if s.expiry == nil {
		s.expiry = time.AfterFunc(d, s.expire)
	} else {
		s.expiry.Reset(d)
	}
}

// expire ends a session whose token expired: whatever it still had queued
// is dropped (it may not see it any more), the unauthorized error is the
// last message it gets, then the 4100 close.
func (s *Session) expire() {
	exp := s.expires.Load()
	if exp == 0 || time.Now().UnixNano() < exp {
		return // renewed meanwhile
	}
	metrics.Errors.WithLabelValues(string(errcode.Unauthorized)).Inc()
	s.out.finish(protocol.Encode(nil, protocol.ErrorOf(errcode.New(errcode.Unauthorized, "token expired; reconnect with a new token"))),
		int(protocol.CloseTokenExpired), "token expired")
	s.cancel()
}

// expired reports whether the token's exp has passed.
func (s *Session) expired() bool {
	exp := s.expires.Load()
	return exp != 0 && time.Now().UnixNano() >= exp
}

// serve runs the session: its first reader, and the hello timeout if the
// upgrade carried no token.
func (s *Session) serve() {
	if !s.authed.Load() {
		s.helloTimer = time.AfterFunc(s.hub.cfg.HelloTimeout, func() {
			if !s.authed.Load() {
				s.closeWith(websocket.StatusPolicyViolation, "no valid hello in time")
			}
		})
	} else {
		s.welcome(nil)
	}
	// However the session ends, a reader that waits or is parked must run
	// to find out and finish it.
	context.AfterFunc(s.ctx, func() {
		if s.raw != nil {
			s.raw.stopWaits()
		}
		if p := s.hub.idle; p != nil {
			p.unpark(s)
		}
	})
	s.read()
}

// finish ends the session once its reader has stopped for good.
func (s *Session) finish() {
	defer s.hub.removeSession(s)
	if s.helloTimer != nil {
		s.helloTimer.Stop()
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	if !s.out.finishing() {
		s.closeWith(websocket.StatusNormalClosure, "")
	}
	s.writers.Wait()
	s.closeWith(websocket.StatusNormalClosure, "")
	if s.watching {
		s.hub.feed.unwatch(s)
	}
	s.leaveAll()
	s.wg.Wait()
	s.conn.CloseNow()
}

func (s *Session) welcome(req *protocol.Request) {
	var ref []byte
	if req != nil {
		ref = req.Ref
	}
	c := s.claims
	s.Send(protocol.Encode(ref, protocol.Welcome{User: c.User, Name: c.Name, Workspace: c.Workspace, Role: string(c.Role), Session: s.id}))
	if s.hub.people != nil {
		s.hub.people.SeenSoon(s.ctx, c.Workspace, c.User, c.Name)
	}
}

// read is the session's reader: it reads frames and serves them one at a
// time (a session's edits are ordered) until the connection ends, then
// finishes the session; or it exits when the poller holds the session,
// which runs read again on the next frame. One reader runs at a time.
// After an edit the reader waits up to IdleAfter for the next one (a
// teammate typing sends a stream of them), after anything else it parks
// at once: a join or a command is mostly followed by a long silence.
func (s *Session) read() {
	linger := true // a new session's hello or join is on its way
	for {
		if s.awaitFrame(linger) {
			return
		}
		// Read is not bound to s.ctx: cancelling it would drop the connection
		// without our close code; closeWith's Close unblocks it instead.
		typ, data, err := readMessage(s.conn)
		if err != nil {
			if websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
				s.hub.log.Debug("session read", "session", s.id, "err", err)
			}
			break
		}
		if s.out.finishing() || s.ctx.Err() != nil {
			break
		}
		linger = isEdit(typ, data)
		if !s.frame(typ, data, linger) {
			break
		}
	}
	s.finish()
}

// readScratch holds a frame while it is read, so that what the request
// keeps is exactly the frame's size: websocket.Conn.Read (io.ReadAll) starts
// every frame at 512 bytes, and an edit is about 150.
var readScratch = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readMessage reads the next frame whole, as websocket.Conn.Read does, into
// memory of its own (the request decoded from it shares that memory).
func readMessage(conn *websocket.Conn) (websocket.MessageType, []byte, error) {
	typ, r, err := conn.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	buf := readScratch.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // a rare large frame's buffer is not kept
			buf.Reset()
			readScratch.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, nil, err
	}
	return typ, bytes.Clone(buf.Bytes()), nil
}

// frame serves one frame; false when the session must stop reading. An
// edit, what a busy session sends most, is served on the reader. Anything
// else (hello, join, the features' commands) decodes JSON and goes through
// Redis and the store, which grows the stack it runs on: a reader that
// lingered with that stack would keep it until a GC shrinks it, and for
// thousands of idle sessions it was a third of their memory. With a
// poller the reader parks right after such a frame (see read) and its
// stack goes with it; without one the frame is served on a goroutine of
// its own that the reader waits for. (Edits on their own goroutine too
// cost a busy room edits and ack tail in local A/B runs.) Which path a
// frame takes is a guess from its bytes (edit); both serve it the same
// way. A request that panics is logged and ends the session, never the
// process.
func (s *Session) frame(typ websocket.MessageType, data []byte, edit bool) (more bool) {
	if edit || s.hub.idle != nil {
		defer s.recoverRequest(&more)
		return s.serveFrame(typ, data)
	}
	more = true
	shallow(func() {
		defer s.recoverRequest(&more)
		more = s.serveFrame(typ, data)
	})
	return more
}

// isEdit guesses from its bytes whether a frame is an edit.
func isEdit(typ websocket.MessageType, data []byte) bool {
	return typ == websocket.MessageText && bytes.Contains(data, editType)
}

var editType = []byte(`"type":"edit"`)

// serveFrame checks, decodes and dispatches one frame.
func (s *Session) serveFrame(typ websocket.MessageType, data []byte) (more bool) {
	if typ != websocket.MessageText {
		s.ReplyError(nil, errcode.New(errcode.Invalid, "binary frames are not accepted; send JSON text frames"))
		return true
	}
	if !s.limiter.Allow() {
		s.replyError(protocol.CheapRef(data), errcode.New(errcode.RateLimited, "too many requests; slow down"))
		return true
	}
	if !utf8.Valid(data) {
		// A browser fails the whole connection on a text frame that is
		// not UTF-8: nothing of this frame may reach a teammate.
		s.replyError(protocol.CheapRef(data), errcode.New(errcode.Invalid, "the frame is not valid UTF-8"))
		return true
	}
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		s.ReplyError(req, err)
		return true
	}
	metrics.Messages.WithLabelValues(s.hub.metricType(req.Type)).Inc()
	if s.expired() {
		s.expire()
		return false
	}
	if err := s.dispatch(req); err != nil {
		s.ReplyError(req, err)
	}
	return true
}

// recoverRequest turns a panic while serving a request into the end of the
// session: logged with its stack, an internal error as its last message,
// then close 1011.
func (s *Session) recoverRequest(more *bool) {
	p := recover()
	if p == nil {
		return
	}
	s.hub.log.Error("request panicked; closing the session", "session", s.id, "panic", p, "stack", string(debug.Stack()))
	metrics.Errors.WithLabelValues(string(errcode.Internal)).Inc()
	s.out.finish(protocol.Encode(nil, protocol.ErrorOf(errcode.New(errcode.Internal, "internal error"))),
		int(websocket.StatusInternalError), "internal error")
	*more = false
}

func (s *Session) dispatch(req *protocol.Request) error {
	if req.Type == "hello" {
		return s.hello(req)
	}
	if s.claims == nil {
		return errcode.New(errcode.Unauthorized, "send hello with a token first")
	}
	if fn, ok := s.hub.handlers[req.Type]; ok {
		return fn(s.ctx, s, req)
	}
	return errcode.New(errcode.Invalid, "unknown message type %q", req.Type)
}

// hello authenticates the session, or renews it: a hello with a fresh token
// of the same user and workspace replaces the claims (and their exp) and
// keeps every joined campaign.
func (s *Session) hello(req *protocol.Request) error {
	c, err := s.hub.signer.Verify(req.Token)
	if err != nil {
		return err
	}
	if s.claims != nil && (c.User != s.claims.User || c.Workspace != s.claims.Workspace) {
		return errcode.New(errcode.Forbidden, "a renewal token must be for the same user and workspace; reconnect to switch")
	}
	s.authenticate(&c)
	s.welcome(req)
	return nil
}

// Joined reports whether the session has joined the campaign.
func (s *Session) Joined(campaign string) bool { return s.joinedTo(campaign) != nil }

// joinedTo returns the session's membership of a campaign, nil if none.
func (s *Session) joinedTo(campaign string) *member {
	for _, m := range s.joined {
		if m.room.id == campaign {
			return m
		}
	}
	return nil
}
