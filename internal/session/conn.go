package session

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"sync"
	"time"
)

// batchConn sits under the WebSocket library's connection and turns the
// frames one writer pass produces into one write(2): coder/websocket
// flushes every frame to the network, which at fan-out (one edit, N
// receivers) cost a syscall per frame per receiver. Between begin and flush
// frames go to a buffer; outside a batch (pongs and close frames the library
// writes on its own) writes pass straight through.
type batchConn struct {
	net.Conn

	early []byte // bytes the HTTP server read past the handshake, read first

	mu       sync.Mutex // guards the following fields; held across a pass-through write
	batching bool
	buf      *[]byte
}

func (c *batchConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// batchBufs are the batch buffers: an idle session holds none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
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

// flush writes what was collected in one write, bounded by deadline, and
// returns to passing writes through.
func (c *batchConn) flush(deadline time.Time) error {
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
		c.Conn.SetWriteDeadline(deadline)
		_, err = c.Conn.Write(*buf)
		c.Conn.SetWriteDeadline(time.Time{})
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
	w.conn = &batchConn{Conn: raw}
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		w.conn.early = bytes.Clone(early)
	}
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 1024), bufio.NewWriterSize(w.conn, 512)), nil
}

func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
