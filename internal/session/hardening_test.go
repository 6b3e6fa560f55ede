package session_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"
)

// connectUntil opens a session whose token expires after ttl.
func connectUntil(t *testing.T, c *sessiontest.Cluster, n *sessiontest.Node, user string, ttl time.Duration) *sessiontest.Client {
	t.Helper()
	tok, err := c.Signer.Sign(auth.Claims{User: user, Name: user, Workspace: "w1", Role: auth.Editor}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	cl, _, err := sessiontest.Dial(t, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Send(map[string]any{"type": "hello", "token": tok})
	cl.Expect("welcome")
	return cl
}

// A session whose token expires while it sends nothing stops receiving at
// expiry: its last message is the unauthorized error, then close 4100.
func TestTokenExpiresOnTime(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		quiet := connectUntil(t, c, n, "quiet", 1500*time.Millisecond)
		quiet.Join(id)
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		ann.Edit(id, 0, `[{"op":"replace","path":"/name","value":"before expiry"}]`)
		ann.Expect("ack")
		if u := quiet.Expect("update"); sessiontest.Num(u["rev"]) != 1 {
			t.Fatalf("update before expiry: %v", u)
		}
		time.Sleep(1700 * time.Millisecond)
		ann.Edit(id, 1, `[{"op":"replace","path":"/name","value":"after expiry"}]`)
		ann.Expect("ack")
		var last map[string]any
		for m := range quiet.In {
			if m["type"] == "update" {
				t.Fatalf("an expired session received %v", m)
			}
			last = m
		}
		if last["type"] != "error" || last["code"] != "unauthorized" {
			t.Fatalf("last message before the close: %v", last)
		}
		if err := <-quiet.Err; websocket.CloseStatus(err) != websocket.StatusCode(protocol.CloseTokenExpired) {
			t.Fatalf("want close 4100, got %v", err)
		}
	})
}

// A hello with a fresh token renews the session in place: still joined, and
// still receiving after the first token's exp.
func TestTokenRenewal(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		// exp has a resolution of one second: this token expires 1 to 2 s
		// from now, after the join and the renewal, before the sleep ends.
		bob := connectUntil(t, c, n, "bob", 2*time.Second)
		bob.Join(id)
		fresh, _ := c.Signer.Sign(auth.Claims{User: "bob", Name: "bob", Workspace: "w1", Role: auth.Editor}, time.Hour)
		bob.Send(map[string]any{"type": "hello", "token": fresh, "ref": "renew"})
		if w := bob.Expect("welcome"); w["ref"] != "renew" {
			t.Fatalf("renewal reply %v", w)
		}
		time.Sleep(2100 * time.Millisecond)
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		ann.Edit(id, 0, `[{"op":"replace","path":"/name","value":"after renewal"}]`)
		ann.Expect("ack")
		if u := bob.Expect("update"); sessiontest.Num(u["rev"]) != 1 {
			t.Fatalf("renewed session: %v", u)
		}
		bob.Edit(id, 1, `[{"op":"replace","path":"/name","value":"bob renewed"}]`)
		bob.Expect("ack")
	})
}

// Invalid UTF-8 anywhere in a frame is refused before anything is stored
// or relayed; the ref is echoed.
func TestInvalidUTF8NeverRelayed(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		bob := c.Connect(n, "bob", "w1", auth.Editor)
		bob.Join(id)
		for _, frame := range []string{
			`{"type":"edit","ref":"u1","campaign":"` + id + `","base":0,"ops":[{"op":"replace","path":"/name","value":"bad ` + "\xff\xfe" + `"}]}`,
			`{"type":"edit","ref":"u2","campaign":"` + id + `","base":0,"ops":[{"op":"add","path":"/k` + "\xc3" + `","value":1}]}`,
			`{"type":"focus","ref":"u3","campaign":"` + id + `","path":"/name` + "\xed\xa0\x80" + `"}`,
		} {
			ann.SendRaw(frame)
			e := ann.Expect("error")
			if ref, _ := e["ref"].(string); e["code"] != "bad_request" || !strings.HasPrefix(ref, "u") {
				t.Fatalf("invalid UTF-8: %v", e)
			}
		}
		bob.Quiet(300 * time.Millisecond)
		if s := c.Connect(n, "cid", "w1", auth.Viewer).Join(id); sessiontest.Num(s["rev"]) != 0 {
			t.Fatalf("an invalid frame changed the draft: %v", s)
		}
		entries, _ := n.Buf.Log(context.Background(), id, 0, -1)
		if len(entries) != 0 {
			t.Fatalf("the log holds %d entries", len(entries))
		}
	})
}

// A session may join a bounded number of campaigns at once.
func TestJoinCap(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{MaxJoined: 2})
		a := c.Connect(n, "ann", "w1", auth.Editor)
		one, two, three := c.Campaign("w1", doc), c.Campaign("w1", doc), c.Campaign("w1", doc)
		a.Join(one)
		a.Join(two)
		a.Send(map[string]any{"type": "join", "campaign": three, "ref": 3})
		if e := a.Expect("error"); e["code"] != "too_large" || sessiontest.Num(e["ref"]) != 3 || !strings.Contains(e["message"].(string), "at most 2") {
			t.Fatalf("third join: %v", e)
		}
		a.Send(map[string]any{"type": "leave", "campaign": one})
		a.Expect("left")
		a.Join(three)
	})
}

// A document near its size limit resyncs every session: a snapshot always
// fits, whatever the update queue's bound.
func TestResyncOfALargeDocumentKeepsSessions(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		const size = 200 << 10
		n := c.Node(session.Config{QueueBytes: 64 << 10, MaxMessage: 256 << 10, Limits: campaign.Limits{MaxDocBytes: 256 << 10}})
		id := c.Campaign("w1", `{"name":"big","body":"`+strings.Repeat("b", size)+`"}`)
		var watchers []*sessiontest.Client
		for _, u := range []string{"w1", "w2", "w3"} {
			w := c.Connect(n, u, "w1", auth.Viewer)
			w.Join(id)
			watchers = append(watchers, w)
		}
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		// Redis loses the buffer: the next edit reloads the room, which sends
		// every session refresh "gap" and a ~200 KiB snapshot.
		ctx := context.Background()
		rdb := n.Buf.Redis()
		keys := sessiontest.Keys(ctx, rdb, n.Buf.Options().Prefix+":{"+id+"}:*")
		rdb.Del(ctx, keys...)
		ann.Edit(id, 0, `[{"op":"replace","path":"/name","value":"x"}]`)
		for i, w := range watchers {
			if r := w.Expect("refresh"); r["reason"] != "gap" {
				t.Fatalf("watcher %d: %v", i, r)
			}
			if s := w.Expect("snapshot"); len(s["doc"].(map[string]any)["body"].(string)) != size {
				t.Fatalf("watcher %d: short snapshot", i)
			}
		}
	})
}

// On the batch subprotocol a pass's messages share frames, one per line, in
// order; a plain collab.v1 client still gets one message per frame.
func TestBatchedFrames(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{RatePerSec: 1e6, RateBurst: 1e6})
		id := c.Campaign("w1", doc)
		batched, _, err := sessiontest.DialProtocols(t, n, http.Header{"Authorization": {"Bearer " + c.Token("bat", "w1", auth.Viewer)}},
			protocol.SubprotocolBatch, protocol.Subprotocol)
		if err != nil {
			t.Fatal(err)
		}
		if batched.Conn.Subprotocol() != protocol.SubprotocolBatch {
			t.Fatalf("negotiated %q", batched.Conn.Subprotocol())
		}
		batched.Expect("welcome")
		batched.Join(id)
		plain := c.Connect(n, "pla", "w1", auth.Viewer)
		plain.Join(id)
		writers := make([]*sessiontest.Client, 8)
		for i := range writers {
			writers[i] = c.Connect(n, "w"+string(rune('a'+i)), "w1", auth.Editor)
			writers[i].Join(id)
		}
		before := map[*sessiontest.Client]int64{batched: batched.Frames.Load(), plain: plain.Frames.Load()}
		const each = 40
		for k := 0; k < each; k++ {
			for i, w := range writers {
				w.Edit(id, 0, `[{"op":"add","path":"/f`+string(rune('a'+i))+`","value":`+strconv.Itoa(k)+`}]`)
			}
		}
		const total = each * 8
		for _, cl := range []*sessiontest.Client{batched, plain} {
			var last int64
			for got := 0; got < total; {
				m := cl.Next()
				if m["type"] != "update" {
					continue
				}
				rev := sessiontest.Num(m["rev"])
				if rev != last+1 {
					t.Fatalf("update rev %d after %d", rev, last)
				}
				last = rev
				got++
			}
			frames := cl.Frames.Load() - before[cl]
			if cl == batched && frames >= total {
				t.Fatalf("batched client: %d frames for %d updates", frames, total)
			}
			if cl == plain && frames < total {
				t.Fatalf("plain client: %d frames for %d updates", frames, total)
			}
			t.Logf("%d updates in %d frames", total, frames)
		}
		// Updates committed together reach each session as one message of
		// the room; an author still never gets its own back.
		wa := writers[0]
		for got := 0; got < total-each; {
			m := wa.Next()
			if m["type"] != "update" {
				continue
			}
			if by, _ := m["by"].(map[string]any); by["user"] == "wa" {
				t.Fatalf("writer wa got its own update back: %v", m)
			}
			got++
		}
	})
}

// A request that holds the reader longer than a ping's write timeout (a
// slow join) does not end the session as "keepalive failed", and teammates'
// updates keep flowing to it meanwhile: the writer never waits for a pong.
func TestSlowRequestKeepsKeepalive(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{PingInterval: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}, func(n *sessiontest.Node) {
			n.Hub.Handle("slow", func(ctx context.Context, s *session.Session, req *protocol.Request) error {
				time.Sleep(1500 * time.Millisecond)
				s.Reply(req, protocol.OK{})
				return nil
			})
		})
		id := c.Campaign("w1", doc)
		slow := c.Connect(n, "slo", "w1", auth.Viewer)
		slow.Join(id)
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		slow.Send(map[string]any{"type": "slow", "ref": "s"})
		time.Sleep(300 * time.Millisecond)
		ann.Edit(id, 0, `[{"op":"replace","path":"/name","value":"during"}]`)
		ann.Expect("ack")
		if u := slow.Expect("update"); sessiontest.Num(u["rev"]) != 1 {
			t.Fatalf("update during a slow request: %v", u)
		}
		if m := slow.Expect("ok"); m["ref"] != "s" {
			t.Fatalf("slow reply %v", m)
		}
		time.Sleep(500 * time.Millisecond) // pings keep going and are answered
		slow.Send(map[string]any{"type": "tab", "campaign": id, "tab": "x"})
		slow.Expect("ok")
	})
}

// Presence shows at most 50 entries, the active ones first, with the total.
func TestPresenceIsCappedInBigRooms(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		var last *sessiontest.Client
		for i := 0; i < 60; i++ {
			last = c.Connect(n, "v"+strconv.Itoa(i), "w1", auth.Viewer)
			last.Join(id)
		}
		last.Send(map[string]any{"type": "focus", "campaign": id, "path": "/name"})
		last.Expect("ok")
		watcher := c.Connect(n, "watch", "w1", auth.Viewer)
		snap := watcher.Join(id)
		if eds := snap["editors"].([]any); len(eds) > 50 {
			t.Fatalf("snapshot carries %d editors", len(eds))
		}
		watcher.ExpectPresence(func(eds []any) bool {
			return len(eds) == 50 && eds[0].(map[string]any)["field"] == "/name"
		})
	})
}

// A request that panics ends its session (internal error, close 1011) and
// nothing else: the node and its other sessions go on. Sessions run on
// goroutines of their own, outside the HTTP server's recovery.
func TestPanickingRequestEndsOnlyItsSession(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{}, func(n *sessiontest.Node) {
			n.Hub.Handle("boom", func(ctx context.Context, s *session.Session, req *protocol.Request) error {
				var m map[string]int
				m["x"] = 1 // a nil map write: a bug in a handler
				return nil
			})
		})
		id := c.Campaign("w1", doc)
		ann := c.Connect(n, "ann", "w1", auth.Editor)
		ann.Join(id)
		bug := c.Connect(n, "bug", "w1", auth.Editor)
		bug.Join(id)
		bug.Send(map[string]any{"type": "boom", "ref": "b"})
		if e := bug.Expect("error"); e["code"] != "internal" {
			t.Fatalf("panic reply %v", e)
		}
		if err := <-bug.Err; websocket.CloseStatus(err) != websocket.StatusInternalError {
			t.Fatalf("panicking session closed with %v", err)
		}
		ann.Edit(id, 0, `[{"op":"replace","path":"/name","value":"still here"}]`)
		ann.Expect("ack")
		if s := c.Connect(n, "cid", "w1", auth.Viewer).Join(id); s["doc"].(map[string]any)["name"] != "still here" {
			t.Fatalf("the node after a panic: %v", s)
		}
	})
}

// An idle session gets a heartbeat (an unsolicited pong) every ping
// interval and answers nothing: it reads nothing meanwhile, so each idle
// session holds one parked goroutine, not a read waiting on a pong (nor a
// ping waiting for one), and stays open.
func TestHeartbeatNeedsNoAnswer(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{PingInterval: 100 * time.Millisecond})
		id := c.Campaign("w1", doc)
		addr := strings.TrimPrefix(n.Srv.URL, "http://")
		token := c.Token("idle", "w1", auth.Viewer)
		const sessions = 20
		conns := make([]net.Conn, sessions)
		for i := range conns {
			conns[i] = rawSession(t, addr, token, `{"type":"join","campaign":"`+id+`"}`)
			defer conns[i].Close()
		}
		time.Sleep(300 * time.Millisecond) // joins and their presence settle
		before := runtime.NumGoroutine()
		var got []byte
		conns[0].SetReadDeadline(time.Now().Add(800 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			k, err := conns[0].Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				break
			}
		}
		if beats := bytes.Count(got, []byte{0x8A, 0x00}); beats < 4 {
			t.Fatalf("%d heartbeats in 800 ms at a 100 ms interval", beats)
		}
		if open := n.Hub.Sessions(); open != sessions {
			t.Fatalf("%d of %d idle sessions still open", open, sessions)
		}
		// Lasting growth, not the moment's: a Redis call in flight (a room's
		// presence beat, a pool dialling) holds goroutines for a while
		// under load.
		grew := runtime.NumGoroutine() - before
		for end := time.Now().Add(2 * time.Second); grew > 3 && time.Now().Before(end); grew = runtime.NumGoroutine() - before {
			time.Sleep(50 * time.Millisecond)
		}
		if grew > 3 {
			t.Fatalf("%d more goroutines after heartbeats to %d idle sessions", grew, sessions)
		}
	})
}

// A workspace's document schema refuses an edit whose result breaks it,
// naming the path and the rule, with nothing applied or relayed; a path the
// schema reserves to admins refuses an editor.
func TestDocumentSchemaChecksEdits(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		ws := "w_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := c.Store.SetDocumentSchema(context.Background(), ws, []byte(`{"type":"object","properties":{
			"name":{"type":"string","maxLength":20},
			"pricing":{"type":"object","x-collab-role":"admin","properties":{"price":{"type":"number","minimum":0}}}}}`), "admin"); err != nil {
			t.Fatal(err)
		}
		id := c.Campaign(ws, `{"name":"Spring","pricing":{"price":5}}`)
		ann := c.Connect(n, "ann", ws, auth.Editor)
		ann.Join(id)
		boss := c.Connect(n, "boss", ws, auth.Admin)
		boss.Join(id)
		cases := []struct {
			who  *sessiontest.Client
			ops  string
			code string
			want string
		}{
			{ann, `[{"op":"replace","path":"/name","value":"far too long for the schema's twenty"}]`, "bad_request", `/name breaks rule "#/properties/name/maxLength"`},
			{ann, `[{"op":"replace","path":"/pricing/price","value":9}]`, "forbidden", "admin"},
			{boss, `[{"op":"replace","path":"/pricing/price","value":-1}]`, "bad_request", "/pricing/price"},
		}
		for i, tc := range cases {
			tc.who.Edit(id, 0, tc.ops, "ref", "s"+strconv.Itoa(i))
			e := tc.who.Expect("error")
			if e["code"] != tc.code || e["ref"] != "s"+strconv.Itoa(i) || !strings.Contains(e["message"].(string), tc.want) {
				t.Fatalf("%s: %v, want %s naming %q", tc.ops, e, tc.code, tc.want)
			}
		}
		entries, _ := n.Buf.Log(context.Background(), id, 0, -1)
		if len(entries) != 0 {
			t.Fatalf("refused edits reached the log: %d entries", len(entries))
		}
		boss.Edit(id, 0, `[{"op":"replace","path":"/pricing/price","value":7}]`, "ref", "ok")
		if a := boss.Expect("ack"); sessiontest.Num(a["rev"]) != 1 {
			t.Fatalf("valid edit: %v", a)
		}
		if u := ann.Expect("update"); sessiontest.Num(u["rev"]) != 1 {
			t.Fatalf("ann saw %v", u)
		}
	})
}
