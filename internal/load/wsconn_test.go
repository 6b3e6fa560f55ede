package load

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/protocol"
)

// The load generator's client against the WebSocket library the server
// uses: the subprotocol negotiated, messages of every length class both
// ways, a ping answered, and the server's close code reported.
func TestWSConnAgainstCoderWebsocket(t *testing.T) {
	sizes := []int{0, 125, 126, 65535, 65536, 300_000}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"collab.v1"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for range sizes {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			c.Write(ctx, websocket.MessageText, p) // echo
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		go c.Read(ctx) // reads the pong for Ping
		if err := c.Ping(pctx); err != nil {
			t.Errorf("ping: %v", err)
		}
		c.Close(4100, "token expired")
	}))
	defer srv.Close()
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")

	if _, err := dialWS(context.Background(), ws, []string{"collab.v1"}, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("upgrade without a token: %v", err)
	}
	c, err := dialWS(context.Background(), ws, []string{"collab.batch", "collab.v1"}, http.Header{"Authorization": {"Bearer tok"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.subprotocol != "collab.v1" {
		t.Fatalf("subprotocol %q", c.subprotocol)
	}
	for _, n := range sizes {
		want := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
		if err := c.writeText(want); err != nil {
			t.Fatal(err)
		}
		got, err := c.read()
		if err != nil {
			t.Fatalf("echo of %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("echo of %d bytes came back as %d different bytes", n, len(got))
		}
	}
	_, err = c.read() // answers the ping on the way, then gets the close
	var ce *closeError
	if !errors.As(err, &ce) || ce.code != 4100 || ce.reason != "token expired" {
		t.Fatalf("close: %v", err)
	}
}

// The table-driven log2 puts a duration in the bucket math.Log would, or
// the next one at a bucket's edge.
func TestHistogramBucket(t *testing.T) {
	for us := int64(1); us < 1e10; us = us*101/100 + 1 {
		got, _ := bucket(time.Duration(us) * time.Microsecond)
		want := min(int(math.Log(float64(us))/math.Log(histGrowth)), histBuckets-1)
		if got < want-1 || got > want+1 {
			t.Fatalf("%d µs: bucket %d, want %d", us, got, want)
		}
	}
}

// What comes in the same frame as a join's answer is read too: an update
// batched behind the snapshot moves the session's rev on.
func TestConnectReadsTheRestOfTheJoinFrame(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.SubprotocolBatch}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		if _, _, err := c.Read(ctx); err != nil { // the join
			return
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"snapshot","campaign":"c1","rev":1,"epoch":"e1","doc":{}}`+"\n"+
			`{"type":"update","campaign":"c1","rev":2,"ops":[],"by":{"user":"u2","name":"B","session":"s2"},"at":1}`))
		c.Read(ctx) // until the test closes
	}))
	defer srv.Close()
	r := &Runner{cfg: Config{URLs: []string{srv.URL}, Log: func(string, ...any) {}}, errs: map[string]int64{}, ack: NewHistogram(), fanout: NewHistogram()}
	s := &session{r: r, campaign: "c1", user: "u1", userB: []byte("u1"), pending: map[string]*batch{}, answered: make(chan struct{}, 1)}
	if err := s.connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.rev != 2 || s.epoch != "e1" || len(r.errs) != 0 {
		t.Fatalf("after the join: rev %d epoch %q errors %v, want rev 2 epoch e1", s.rev, s.epoch, r.errs)
	}
}
