package load

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// wsConn is the load generator's own WebSocket client (RFC 6455), just
// what a collab session needs: text frames, control frames, the close. A
// load generator shares the machine with the server it measures, and
// coder/websocket's per-read context timers and per-message readers cost
// it several times what the server spends on a frame; this one reads each
// frame into a buffer it reuses, with no timer and no allocation. The
// server under test still speaks coder/websocket.
type wsConn struct {
	conn        net.Conn
	br          *bufio.Reader
	subprotocol string
	readLimit   int

	wmu  sync.Mutex // guards the following fields: one frame written at a time
	wbuf []byte
	shut bool // a close frame went out

	msg []byte // the message being read, reused (owned by the reader)
}

var errWSClosed = errors.New("websocket closed")

// closeError is the peer's close frame.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket closed by peer: %d %s", e.code, e.reason)
}

// dialWS opens a WebSocket to rawURL (ws:// only: the bench talks to
// loopback or a private network), offering subprotocols, with header.
func dialWS(ctx context.Context, rawURL string, subprotocols []string, header http.Header) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("dial %s: the load generator speaks ws:// only", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var keyBytes [16]byte
	rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", u.RequestURI(), u.Host)
	fmt.Fprintf(&req, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n", key)
	if len(subprotocols) > 0 {
		fmt.Fprintf(&req, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(subprotocols, ", "))
	}
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", k, v)
		}
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, fmt.Errorf("upgrade refused: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, errors.New("upgrade: bad Sec-WebSocket-Accept")
	}
	conn.SetDeadline(time.Time{})
	return &wsConn{conn: conn, br: br, subprotocol: resp.Header.Get("Sec-WebSocket-Protocol"), readLimit: 4 << 20}, nil
}

// read returns the next text or binary message. The slice is valid until
// the next read. Pings are answered, pongs (the server's heartbeats)
// skipped, and a close frame is answered and returned as a *closeError.
func (c *wsConn) read() ([]byte, error) {
	if cap(c.msg) > 1<<20 {
		c.msg = nil // a big message's buffer is not kept for the small ones after it
	}
	c.msg = c.msg[:0]
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		masked := h[1]&0x80 != 0
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = int64(binary.BigEndian.Uint64(b[:]))
		}
		if masked {
			return nil, errors.New("websocket: a masked frame from the server")
		}
		if n < 0 || int64(len(c.msg))+n > int64(c.readLimit) {
			return nil, fmt.Errorf("websocket: a message over %d bytes", c.readLimit)
		}
		if op >= 0x8 { // control: at most 125 bytes, never fragmented
			var p [125]byte
			if n > 125 {
				return nil, errors.New("websocket: a control frame over 125 bytes")
			}
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return nil, err
			}
			switch op {
			case 0x8:
				ce := &closeError{code: 1005}
				if n >= 2 {
					ce.code, ce.reason = int(binary.BigEndian.Uint16(p[:2])), string(p[2:n])
				}
				c.writeFrame(0x8, p[:min(n, 2)])
				c.conn.Close()
				return nil, ce
			case 0x9:
				c.writeFrame(0xA, p[:n])
			}
			continue
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return nil, err
		}
		if fin {
			return c.msg, nil
		}
	}
}

// writeText sends one text message, masked as a client's frames must be.
func (c *wsConn) writeText(p []byte) error { return c.writeFrame(0x1, p) }

func (c *wsConn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.shut {
		return errWSClosed
	}
	if op == 0x8 {
		c.shut = true
	}
	b := append(c.wbuf[:0], 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// close sends a close frame and closes the connection without waiting for
// the server's answer (the bench is done with it).
func (c *wsConn) close(code int, reason string) {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	c.writeFrame(0x8, append(p, reason...))
	c.conn.Close()
}

// closeNow closes the connection at once.
func (c *wsConn) closeNow() { c.conn.Close() }
