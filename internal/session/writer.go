package session

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
)

// batchConn sits under the WebSocket library's connection and turns the
// frames one writer pass produces into one write(2): coder/websocket
// flushes every frame to the network, which at fan-out (one edit, N
// receivers) cost a syscall per frame per receiver. Between begin and flush
// frames go to a buffer; outside a batch (pongs and close frames the library
// writes on its own) writes pass straight through. Its reading half
// (idleRead, idle.go) lets an idle session wait without a goroutine.
type batchConn struct {
	net.Conn
	idleRead
	br *bufio.Reader // the library's reader over this connection

	timeout time.Duration // a write's deadline, at least half of it ahead

	mu       sync.Mutex // guards the following fields; held across a pass-through write
	batching bool
	buf      *[]byte
	closeOut bool      // the library wrote a close frame: no data frame may follow
	writeBy  time.Time // the write deadline set on the connection
}

func (c *batchConn) Read(p []byte) (int, error) {
	if n, err, ok := c.readAhead(p); ok {
		return n, err
	}
	return c.Conn.Read(p)
}

// batchBufs are the batch buffers: an idle session holds none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Write takes what coder/websocket writes: since the session writes its
// data frames itself (appendText), these are control frames only (ping,
// pong, close), each in one call (a server's control frame is at most 127
// bytes: it fits the library's 256-byte buffer), so they never split
// around a data frame.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0] == 0x88 {
		c.closeOut = true
	}
	if c.batching {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	c.armWrite(time.Now())
	return c.Conn.Write(p)
}

// armWrite keeps the connection's write deadline between half the timeout
// and the whole of it ahead of now; mu held. One deadline set and cleared
// per pass cost two runtime timer updates per write(2), which at fan-out
// is per receiver; a deadline left armed costs nothing until half of it
// has gone. A stuck write therefore fails after half to all of the timeout.
func (c *batchConn) armWrite(now time.Time) {
	if c.writeBy.Sub(now) < c.timeout/2 {
		c.writeBy = now.Add(c.timeout)
		c.Conn.SetWriteDeadline(c.writeBy)
	}
}

// begin starts collecting frames.
func (c *batchConn) begin() {
	c.mu.Lock()
	c.batching = true
	if c.buf == nil {
		c.buf = batchBufs.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// appendText adds one unmasked, unfragmented text frame holding the parts
// joined by sep to the batch (RFC 6455 section 5.2: a server's frames are
// never masked). Writing data frames here rather than through the library
// saves its per-message locking and a copy; the library still does the
// handshake, reading, control frames and the close.
func (c *batchConn) appendText(parts [][]byte, sep byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if len(parts) > 1 && sep != 0 {
		n += len(parts) - 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeOut {
		return net.ErrClosed
	}
	b := *c.buf
	b = append(b, 0x81) // FIN, text
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for i, p := range parts {
		if i > 0 && sep != 0 {
			b = append(b, sep)
		}
		b = append(b, p...)
	}
	*c.buf = b
	return nil
}

// appendHeartbeat adds an unsolicited pong to the batch, the keepalive RFC
// 6455 (5.5.3) allows: it keeps proxies from closing an idle connection,
// and the peer answers nothing. A ping's pong would make the session read:
// the library reads it inside a read that then waits for the next data
// frame, on a deep stack, for as long as the session stays idle. A dead
// peer is found by TCP instead (keepalive probes and a user timeout, set
// at the upgrade).
func (c *batchConn) appendHeartbeat() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeOut {
		return net.ErrClosed
	}
	*c.buf = append(*c.buf, 0x8A, 0x00) // FIN, pong, no payload
	return nil
}

// flush writes what was collected in one write, bounded by the write
// timeout from now, and returns to passing writes through.
func (c *batchConn) flush(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	buf := c.buf
	c.buf = nil
	if buf == nil {
		return nil
	}
	var err error
	if len(*buf) > 0 {
		c.armWrite(now)
		_, err = c.Conn.Write(*buf)
	}
	if cap(*buf) <= 1<<20 {
		*buf = (*buf)[:0]
		batchBufs.Put(buf)
	}
	return err
}

// hijackWriter hands the WebSocket library a batchConn instead of the raw
// connection, with small buffers of its own: the HTTP server's 4 KiB reader
// and writer would otherwise stay with every idle session.
type hijackWriter struct {
	http.ResponseWriter
	idle, dead time.Duration // TCP keepalive idle time and dead-peer timeout
	write      time.Duration // a write's timeout

	conn *batchConn
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: raw, timeout: w.write}
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		w.conn.ahead = bytes.Clone(early)
	}
	if sc, ok := raw.(syscall.Conn); ok {
		w.conn.rc, _ = sc.SyscallConn()
	}
	detectDeadPeer(raw, w.idle, w.dead)
	w.conn.br = bufio.NewReaderSize(w.conn, 512)
	return w.conn, bufio.NewReadWriter(w.conn.br, bufio.NewWriterSize(w.conn, 256)), nil
}

func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writer drains the queue and exits when it is empty; the queue starts it
// again on the next message, heartbeat or close. Each pass goes out in
// one write(2) with one deadline, however many frames it holds, and on the
// batch subprotocol as few frames as fit.
//
// A write costs a syscall per receiver, so at fan-out the number of writes,
// not of messages, is what a node can afford. A writer that wrote less than
// a delay ago gathers for the rest of that delay before its next pass; the
// delay grows with the number of busy writers on the node (one millisecond
// per twenty, up to MaxWriteDelay). An isolated message still goes out at
// once: only a session that is receiving a stream waits, and only for
// teammates' updates: an ack, an error or a snapshot cuts the wait short.
func (s *Session) writer() {
	defer s.writers.Done()
	h := s.hub
	h.writing.Add(1)
	defer h.writing.Add(-1)
	var batch []outMsg
	var last time.Time
	// wait gathers for up to d, or (forAnswer) until the answer owed to
	// the session is queued; what is urgent ends it. Its signal and timer
	// are the session's, made on its first wait: a writer starts per
	// burst, and at fan-out one per receiver per message.
	wait := func(d time.Duration, forAnswer bool) {
		if d <= 100*time.Microsecond {
			return
		}
		if !s.out.gather(&s.hurry, forAnswer) {
			return
		}
		if s.wait == nil {
			s.wait = time.NewTimer(d)
		} else {
			s.wait.Reset(d)
		}
		select {
		case <-s.wait.C:
		case <-s.hurry:
		}
		s.wait.Stop()
		s.out.gather(nil, false)
		select { // a signal sent as the timer fired
		case <-s.hurry:
		default:
		}
	}
	for {
		if !last.IsZero() {
			delay := min(time.Duration(h.writing.Load())*time.Millisecond/20, h.cfg.MaxWriteDelay)
			wait(delay-time.Since(last), false)
		}
		// Teammates' updates while this session's own edit is being ordered
		// (it may have come in during the wait above): its ack, urgent, ends
		// this wait within a commit, and one write then carries both.
		wait(maxAckHold, true)
		var beat, done bool
		var final *closing
		batch, beat, final, done = s.out.take(batch[:0])
		if done {
			return
		}
		if len(batch) > 0 || beat {
			now := time.Now()
			if len(batch) > 0 {
				last = now
			}
			s.raw.begin()
			frames, err := s.writeBatch(batch)
			if beat && err == nil {
				err = s.raw.appendHeartbeat()
			}
			metrics.WriterPasses.Inc()
			metrics.FramesSent.Add(float64(frames))
			if ferr := s.raw.flush(now); err == nil {
				err = ferr
			}
			if err != nil {
				s.closeWith(websocket.StatusCode(protocol.CloseTooSlow), "write timed out")
				return
			}
		}
		if cap(batch) > 256 {
			batch = nil
		}
		if final != nil {
			s.closeWith(websocket.StatusCode(final.code), final.reason)
			return
		}
	}
}

// maxAckHold bounds how long teammates' updates wait for the ack of the
// session's own edit in flight. An edit is ordered within milliseconds; on
// a saturated node it takes longer, and each write saved then is CPU the
// node has not got (at 400 writers on one campaign the ack takes about
// 50 ms, and a shorter hold wrote a session two or three times an edit).
// The updates never wait longer than the session's own ack does.
const maxAckHold = 100 * time.Millisecond

// maxBatchFrame is where a batch frame stops taking more messages.
const maxBatchFrame = 256 << 10

// writeBatch writes a pass's messages into the batch buffer: a frame each
// on collab.v1, newline-joined frames on the batch subprotocol. It clears
// batch and returns how many frames it wrote.
func (s *Session) writeBatch(batch []outMsg) (int, error) {
	var err error
	frames := 0
	var one [1][]byte
	if !s.batched {
		for i, m := range batch {
			for rest := m.b; err == nil && len(rest) > 0; {
				if one[0], rest = rest, nil; m.joined {
					one[0], rest = protocol.NextMessage(one[0])
				}
				err = s.raw.appendText(one[:], 0)
				frames++
			}
			batch[i] = outMsg{}
		}
		return frames, err
	}
	parts := partsPool.Get().(*[][]byte)
	size := 0
	emit := func() {
		if len(*parts) > 0 && err == nil {
			err = s.raw.appendText(*parts, protocol.BatchSeparator)
			frames++
		}
		clear(*parts)
		*parts, size = (*parts)[:0], 0
	}
	for i, m := range batch {
		if !m.joined && bytes.IndexByte(m.b, protocol.BatchSeparator) >= 0 {
			// Never the case for what the server encodes; kept whole if so.
			emit()
			*parts = append(*parts, m.b)
			emit()
		} else {
			if size > 0 && size+len(m.b) > maxBatchFrame {
				emit()
			}
			*parts = append(*parts, m.b)
			size += len(m.b) + 1
		}
		batch[i] = outMsg{}
	}
	emit()
	if cap(*parts) <= 4096 {
		partsPool.Put(parts)
	}
	return frames, err
}

var partsPool = sync.Pool{New: func() any { p := make([][]byte, 0, 64); return &p }}
