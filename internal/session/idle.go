package session

import (
	"sync"
	"syscall"
	"time"
)

// An idle session holds no goroutine. A session's reader waits for its
// next frame on a shallow stack (await) instead of inside the WebSocket
// library's read, which parks twenty calls deep. After an edit, once it
// has waited longer than Config.IdleAfter, the hub's sweep cuts the wait
// short; after any other frame it does not wait at all. Either way the
// reader then hands the socket to the hub's poller (one epoll instance for
// the node, on Linux) and exits. The poller starts a new reader when the
// socket has something to read (a frame, EOF, an error) or the session
// ends. A reader's stack was a third of an idle session's memory, and the
// collector's heap goal counts stacks too.
//
// What an idle session receives does not wake it: the writer runs on its
// own goroutine, and the heartbeats are unsolicited pongs that the peer
// does not answer (see appendHeartbeat).

// idleRead is the reading half of a batchConn's state: the bytes a wait
// read ahead of the library, and the sweep's handle on a wait.
type idleRead struct {
	rc syscall.RawConn // nil when the connection has no descriptor: a reader then waits in the library

	// rmu guards the fields below and the look at the library's reader in
	// buffered: a close handshake may read beside a wait. It is not
	// batchConn.mu, which a stuck write holds for up to the write timeout.
	rmu      sync.Mutex
	ahead    []byte    // read past the handshake or by a wait, not yet by the library
	aheadBuf *[]byte   // ahead's pooled buffer (a wait's), returned once ahead is read
	rerr     error     // what the wait's read ended with (EOF, a reset), returned once ahead is read
	since    time.Time // when the current wait began; zero when none
	kicked   bool      // the wait was cut short with a past read deadline, still to be cleared
	closing  bool      // the session ends: no further wait may start
}

// aheadBufs hold what a wait reads: a busy session holds one between a wait
// and the library's read of it, an idle one none.
var aheadBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// readAhead returns bytes a wait read, or the error it ended with, before
// the connection is read again; ok is false when there are none.
func (c *idleRead) readAhead(p []byte) (n int, err error, ok bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.ahead) > 0 {
		n = copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		if len(c.ahead) == 0 {
			if c.aheadBuf != nil {
				aheadBufs.Put(c.aheadBuf)
			}
			c.ahead, c.aheadBuf = nil, nil
		}
		return n, nil, true
	}
	if c.rerr != nil {
		return 0, c.rerr, true
	}
	return 0, nil, false
}

// kickIfIdle cuts short a wait that began before cutoff (the sweep): the
// waiting reader then parks.
func (c *batchConn) kickIfIdle(cutoff time.Time) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if !c.since.IsZero() && !c.since.After(cutoff) {
		c.kickLocked()
	}
}

// stopWaits is called as the session ends, before its close handshake
// starts: no wait starts from then on, buffered no longer looks at the
// library's reader, and a wait that runs is cut short so that its reader
// goes on to the library's read and learns how the session ended.
func (c *batchConn) stopWaits() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.closing = true
	if !c.since.IsZero() {
		c.kickLocked()
	}
}

// kickLocked sets a past read deadline once per wait; rmu held.
func (c *batchConn) kickLocked() {
	if !c.kicked {
		c.kicked = true
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// beginWait records a wait's start; false when the session is ending.
func (c *batchConn) beginWait(now time.Time) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closing {
		return false
	}
	c.since = now
	return true
}

// endWait ends a wait and clears the deadline a kick set; it reports
// whether there was a kick.
func (c *batchConn) endWait() (kicked bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.since = time.Time{}
	if c.kicked {
		c.kicked = false
		c.Conn.SetReadDeadline(time.Time{})
		return true
	}
	return false
}

// buffered reports whether a frame's bytes are already in memory: the
// library's reader or a wait's read-ahead. Once the session is closing,
// the close handshake reads the library's reader on its own goroutine:
// buffered then says true without looking, and the reader goes to the
// library's read, which waits its turn.
func (c *batchConn) buffered() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.closing || (c.br != nil && c.br.Buffered() > 0) || len(c.ahead) > 0 || c.rerr != nil
}

// awaitFrame returns when the reader may read a frame without parking in
// the library, or reports parked when the poller now holds the session
// and the reader must exit. With linger it first waits up to IdleAfter for
// a frame; without, it parks at once. Without a descriptor or a poller it
// returns at once and the library's read waits.
func (s *Session) awaitFrame(linger bool) (parked bool) {
	c, p := s.raw, s.hub.idle
	if c == nil || c.rc == nil || p == nil || c.buffered() {
		return false
	}
	for {
		if linger {
			if !c.beginWait(time.Now()) {
				return false // ending: the library's read finds out how
			}
			c.await()
			if !c.endWait() || s.ctx.Err() != nil {
				return false
			}
			if c.buffered() {
				return false // the kick came as bytes did
			}
		}
		// A socket that is readable as it is handed over (bytes came after
		// the look above) wakes the poller at once: epoll reports a ready
		// descriptor when it is added.
		if p.park(s) {
			return true
		}
		linger = true // the poller could not take it: wait on
	}
}

// poller is what holds idle sessions: epoll on Linux, none elsewhere.
type poller interface {
	// park hands s's socket to the poller, which starts s.read when it is
	// readable or s ends; false when it cannot (the reader waits on).
	park(s *Session) bool
	// unpark starts s.read at once if s is parked (s ends).
	unpark(s *Session)
	// parkedCount is how many sessions it holds.
	parkedCount() int
	close()
}
