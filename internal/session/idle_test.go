package session_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"
)

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// needsPoller skips where idle sessions keep their reader (no epoll).
func needsPoller(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle sessions are parked by epoll, on Linux only")
	}
}

// Idle sessions hold no reader goroutine, and a parked session still gets
// every update, and is served as soon as it sends again.
func TestIdleSessionsParkAndWake(t *testing.T) {
	needsPoller(t)
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{IdleAfter: 100 * time.Millisecond})
		id := c.Campaign("w1", doc)
		var watchers []*sessiontest.Client
		for i := 0; i < 8; i++ {
			w := c.Connect(n, "bob", "w1", auth.Editor)
			w.Join(id)
			watchers = append(watchers, w)
		}
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		waitFor(t, 3*time.Second, "all 9 sessions parked", func() bool { return n.Hub.Parked() == 9 })

		for rev := int64(0); rev < 3; rev++ {
			ann.Edit(id, rev, `[{"op":"replace","path":"/name","value":"v`+string(rune('0'+rev))+`"}]`)
			if a := ann.Expect("ack"); sessiontest.Num(a["rev"]) != rev+1 {
				t.Fatalf("ack %d: %v", rev+1, a)
			}
			for _, w := range watchers {
				if u := w.Expect("update"); sessiontest.Num(u["rev"]) != rev+1 {
					t.Fatalf("parked watcher: update %v, want rev %d", u, rev+1)
				}
			}
			time.Sleep(300 * time.Millisecond) // ann's reader parks between edits
		}
		// A watcher that wakes to edit gets its ack, and parks again.
		watchers[3].Edit(id, 3, `[{"op":"replace","path":"/name","value":"from a parked session"}]`)
		if a := watchers[3].Expect("ack"); sessiontest.Num(a["rev"]) != 4 {
			t.Fatalf("ack after waking: %v", a)
		}
		waitFor(t, 3*time.Second, "all 9 sessions parked again", func() bool { return n.Hub.Parked() == 9 })
	})
}

// A parked session reads whatever shape its next bytes come in: a frame
// split across two writes, and two frames in one write.
func TestParkedSessionReadsSplitAndJoinedFrames(t *testing.T) {
	needsPoller(t)
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{IdleAfter: 50 * time.Millisecond})
		addr := strings.TrimPrefix(n.Srv.URL, "http://")
		conn, br := rawSessionReader(t, addr, c.Token("ann", "w1", auth.Editor), "")
		defer conn.Close()
		if m := readServerMessage(t, conn, br); m["type"] != "welcome" {
			t.Fatalf("first message: %v", m)
		}
		parked := func() { waitFor(t, 3*time.Second, "the session parked", func() bool { return n.Hub.Parked() == 1 }) }

		parked()
		f := maskedFrame([]byte(`{"type":"no.such.command","ref":1}`))
		conn.Write(f[:5])
		time.Sleep(200 * time.Millisecond)
		conn.Write(f[5:])
		if m := readServerMessage(t, conn, br); m["type"] != "error" || m["ref"] != 1.0 {
			t.Fatalf("answer to a split frame: %v", m)
		}

		parked()
		two := append(maskedFrame([]byte(`{"type":"no.such.command","ref":2}`)), maskedFrame([]byte(`{"type":"no.such.command","ref":3}`))...)
		conn.Write(two)
		for _, ref := range []float64{2, 3} {
			if m := readServerMessage(t, conn, br); m["type"] != "error" || m["ref"] != ref {
				t.Fatalf("answer %v to two frames in one write: %v", ref, m)
			}
		}
	})
}

// A parked session ends with its connection: a peer that goes away, and a
// node that shuts down, each finish every parked session.
func TestParkedSessionsEnd(t *testing.T) {
	needsPoller(t)
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{IdleAfter: 50 * time.Millisecond})
		id := c.Campaign("w1", doc)
		addr := strings.TrimPrefix(n.Srv.URL, "http://")
		gone := rawSession(t, addr, c.Token("gone", "w1", auth.Editor), `{"type":"join","campaign":"`+id+`"}`)
		var stay []*sessiontest.Client
		for i := 0; i < 3; i++ {
			cl := c.Connect(n, "ann", "w1", auth.Editor)
			cl.Join(id)
			stay = append(stay, cl)
		}
		waitFor(t, 3*time.Second, "4 sessions parked", func() bool { return n.Hub.Parked() == 4 })

		gone.Close()
		waitFor(t, 3*time.Second, "the session whose peer left finished", func() bool { return n.Hub.Sessions() == 3 })
		if p := n.Hub.Parked(); p != 3 {
			t.Fatalf("parked after one left: %d, want 3", p)
		}

		start := time.Now()
		n.Stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("shutdown with parked sessions took %v", d)
		}
		if s, p := n.Hub.Sessions(), n.Hub.Parked(); s != 0 || p != 0 {
			t.Fatalf("after shutdown: %d sessions, %d parked", s, p)
		}
		for _, cl := range stay {
			select {
			case err := <-cl.Err:
				if websocket.CloseStatus(err) != websocket.StatusGoingAway {
					t.Fatalf("parked session closed with %v, want 1001", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a parked session was not closed by the shutdown")
			}
		}
	})
}

// readServerMessage reads one unmasked text frame from the server and
// decodes it, skipping heartbeats (pongs).
func readServerMessage(t *testing.T, conn net.Conn, br *bufio.Reader) map[string]any {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if h[0]&0x0f != 0x1 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("frame %q: %v", p, err)
		}
		if m["type"] == "presence" {
			continue
		}
		return m
	}
}
