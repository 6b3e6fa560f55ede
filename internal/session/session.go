package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
)

// Session is one WebSocket connection. Its reader goroutine decodes and
// dispatches requests one at a time (so a session's edits are ordered); its
// writer goroutine drains the send queue.
type Session struct {
	hub  *Hub
	conn *websocket.Conn
	id   string
	out  *queue

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc

	// Owned by the reader goroutine.
	claims  *auth.Claims
	limiter *rate.Limiter
	joined  map[string]*member

	authed    atomic.Bool // set once hello (or the bearer header) succeeded
	closeOnce sync.Once
	wg        sync.WaitGroup // helper goroutines (close handshakes, async commands)
	writers   sync.WaitGroup // the writer goroutine, while it runs
}

func newSession(h *Hub, conn *websocket.Conn, claims *auth.Claims) *Session {
	b := make([]byte, 9)
	rand.Read(b)
	ctx, cancel := context.WithCancel(h.ctx)
	conn.SetReadLimit(h.cfg.MaxMessage)
	s := &Session{hub: h, conn: conn, id: "s" + hex.EncodeToString(b),
		ctx: ctx, cancel: cancel, claims: claims,
		limiter: rate.NewLimiter(rate.Limit(h.cfg.RatePerSec), h.cfg.RateBurst), joined: map[string]*member{}}
	s.out = newQueue(h.cfg.QueueBytes, func() {
		s.writers.Add(1)
		go s.writer()
	})
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
func (s *Session) Send(msg []byte) bool {
	if s.out.push(msg) {
		return true
	}
	if s.ctx.Err() == nil {
		metrics.SlowClosed.Inc()
		s.hub.log.Info("session too slow, closing", "session", s.id)
		s.closeWith(CloseTooSlow, "too slow: rejoin with since")
	}
	return false
}

// Reply queues a reply of the given type to req.
func (s *Session) Reply(req *Request, typ string, fields Msg) {
	s.Send(encode(typ, req.Ref, fields))
}

// ReplyError queues an error reply to req.
func (s *Session) ReplyError(req *Request, err error) {
	var ref []byte
	if req != nil {
		ref = req.Ref
	}
	code := errcode.Of(err)
	metrics.Errors.WithLabelValues(string(code)).Inc()
	if code == errcode.Internal {
		s.hub.log.Error("request failed", "session", s.id, "err", err)
	}
	s.Send(encodeError(ref, err))
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
		s.out.close()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn.Close(code, reason)
		}()
		s.cancel()
	})
}

func (s *Session) serve() {
	defer s.hub.removeSession(s)
	var helloTimer *time.Timer
	if s.claims == nil {
		helloTimer = time.AfterFunc(s.hub.cfg.HelloTimeout, func() {
			if !s.authed.Load() {
				s.closeWith(websocket.StatusPolicyViolation, "no valid hello in time")
			}
		})
	} else {
		s.authed.Store(true)
		s.welcome(nil)
	}
	s.reader()
	if helloTimer != nil {
		helloTimer.Stop()
	}
	s.closeWith(websocket.StatusNormalClosure, "")
	s.writers.Wait()
	s.leaveAll()
	s.wg.Wait()
	s.conn.CloseNow()
}

func (s *Session) welcome(req *Request) {
	var ref []byte
	if req != nil {
		ref = req.Ref
	}
	c := s.claims
	s.Send(encode("welcome", ref, Msg{"user": c.User, "name": c.Name, "workspace": c.Workspace, "role": c.Role, "session": s.id}))
}

func (s *Session) reader() {
	for {
		// Read is not bound to s.ctx: cancelling it would drop the connection
		// without our close code; closeWith's Close unblocks it instead.
		typ, data, err := s.conn.Read(context.Background())
		if err != nil {
			if websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
				s.hub.log.Debug("session read", "session", s.id, "err", err)
			}
			return
		}
		if typ != websocket.MessageText {
			s.ReplyError(nil, errcode.New(errcode.Invalid, "binary frames are not accepted; send JSON text frames"))
			continue
		}
		if !s.limiter.Allow() {
			s.ReplyError(nil, errcode.New(errcode.RateLimited, "too many requests; slow down"))
			continue
		}
		req, err := DecodeRequest(data)
		if err != nil {
			s.ReplyError(req, err)
			continue
		}
		metrics.Messages.WithLabelValues(s.hub.metricType(req.Type)).Inc()
		if s.claims != nil && !s.claims.Expires.IsZero() && time.Now().After(s.claims.Expires) {
			s.ReplyError(req, errcode.New(errcode.Unauthorized, "token expired"))
			s.closeWith(CloseTokenExpired, "token expired")
			return
		}
		if err := s.dispatch(req); err != nil {
			s.ReplyError(req, err)
		}
	}
}

var knownTypes = map[string]bool{"hello": true, "join": true, "leave": true, "edit": true, "tab": true, "focus": true}

// metricType labels a message by its type when the hub serves that type,
// so clients cannot grow the label set with made-up types.
func (h *Hub) metricType(t string) string {
	if knownTypes[t] || h.handlers[t] != nil {
		return t
	}
	return "other"
}

func (s *Session) dispatch(req *Request) error {
	if req.Type == "hello" {
		return s.hello(req)
	}
	if s.claims == nil {
		return errcode.New(errcode.Unauthorized, "send hello with a token first")
	}
	switch req.Type {
	case "join":
		return s.join(req)
	case "leave":
		return s.leave(req)
	case "edit":
		return s.edit(req)
	case "tab":
		return s.tab(req)
	case "focus":
		return s.focus(req)
	}
	if fn, ok := s.hub.handlers[req.Type]; ok {
		return fn(s.ctx, s, req)
	}
	return errcode.New(errcode.Invalid, "unknown message type %q", req.Type)
}

func (s *Session) hello(req *Request) error {
	if s.claims != nil {
		return errcode.New(errcode.Invalid, "already authenticated")
	}
	c, err := s.hub.signer.Verify(req.Token)
	if err != nil {
		return err
	}
	s.claims = &c
	s.authed.Store(true)
	s.welcome(req)
	return nil
}

// writer drains the queue and exits when it is empty; the queue starts it
// again on the next message or keepalive ping.
func (s *Session) writer() {
	defer s.writers.Done()
	var batch [][]byte
	for {
		var ping, done bool
		batch, ping, done = s.out.take(batch[:0])
		if done {
			return
		}
		for i, msg := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.WriteTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, msg)
			cancel()
			batch[i] = nil
			if err != nil {
				s.closeWith(CloseTooSlow, "write timed out")
				return
			}
		}
		if ping {
			ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.WriteTimeout)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				s.closeWith(websocket.StatusGoingAway, "keepalive failed")
				return
			}
		}
	}
}

// Joined reports whether the session has joined the campaign.
func (s *Session) Joined(campaign string) bool { return s.joined[campaign] != nil }
