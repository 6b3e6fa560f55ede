package session

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/draft"
)

const doc = `{"name":"Spring","messages":{"email":{"subject":"Hi","body":"x"}},"list":[1,2,3],"canvas":{"transitions":[]}}`

func TestFanout(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n := c.node(Config{})
		id := c.campaign("w1", doc)
		a, b := c.connect(n, "ann", "w1", auth.Editor), c.connect(n, "bob", "w1", auth.Viewer)
		snap := a.join(id)
		if num(snap["rev"]) != 0 || snap["status"] != "draft" || snap["epoch"] == "" || jsonOf(snap["doc"].(map[string]any)["list"]) != "[1,2,3]" {
			t.Fatalf("snapshot %v", snap)
		}
		b.join(id)
		a.edit(id, 0, `[{"op":"replace","path":"/name","value":"Summer"}]`, "ref", "r1")
		ack := a.expect("ack")
		if num(ack["rev"]) != 1 || ack["ref"] != "r1" {
			t.Fatalf("ack %v", ack)
		}
		u := b.expect("update")
		by := u["by"].(map[string]any)
		if num(u["rev"]) != 1 || u["campaign"] != id || jsonOf(u["ops"]) != `[{"op":"replace","path":"/name","value":"Summer"}]` || by["user"] != "ann" || by["name"] != "Ann" {
			t.Fatalf("update %v", u)
		}
		a.quiet(100 * time.Millisecond) // the author gets its ack, not its own update
		// A late joiner sees the edit in its snapshot.
		d := c.connect(n, "dee", "w1", auth.Viewer)
		snap = d.join(id)
		if num(snap["rev"]) != 1 || snap["doc"].(map[string]any)["name"] != "Summer" {
			t.Fatalf("late snapshot %v", snap)
		}
	})
}

func TestFanoutAcrossNodes(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n1, n2 := c.node(Config{}), c.node(Config{})
		id := c.campaign("w1", doc)
		a, b := c.connect(n1, "ann", "w1", auth.Editor), c.connect(n2, "bob", "w1", auth.Editor)
		a.join(id)
		b.join(id)
		// Edits from both nodes, interleaved; each side sees the other's in rev order.
		for i := 0; i < 20; i++ {
			a.edit(id, int64(2*i), fmt.Sprintf(`[{"op":"add","path":"/a%d","value":%d}]`, i, i))
			if rev := num(a.expect("ack")["rev"]); rev != int64(2*i+1) {
				t.Fatalf("a ack %d", rev)
			}
			if u := b.expect("update"); num(u["rev"]) != int64(2*i+1) {
				t.Fatalf("b update %v", u)
			}
			b.edit(id, int64(2*i+1), fmt.Sprintf(`[{"op":"add","path":"/b%d","value":%d}]`, i, i))
			if rev := num(b.expect("ack")["rev"]); rev != int64(2*i+2) {
				t.Fatalf("b ack %d", rev)
			}
			if u := a.expect("update"); num(u["rev"]) != int64(2*i+2) {
				t.Fatalf("a update %v", u)
			}
		}
		// Both nodes hold the same draft.
		s1, s2 := c.connect(n1, "x", "w1", auth.Viewer).join(id), c.connect(n2, "y", "w1", auth.Viewer).join(id)
		if jsonOf(s1["doc"]) != jsonOf(s2["doc"]) || num(s1["rev"]) != 40 || num(s2["rev"]) != 40 {
			t.Fatalf("nodes disagree:\n%v\n%v", s1, s2)
		}
	})
}

func TestConflicts(t *testing.T) {
	cases := []struct {
		name      string
		first     string // ops of the first writer (base 0)
		second    string // ops of the second writer, also base 0
		conflict  bool
		paths     string // the refresh's paths
		values    string // the refresh's values
		finalName string
	}{
		{"same path", `[{"op":"replace","path":"/name","value":"A"}]`, `[{"op":"replace","path":"/name","value":"B"}]`, true, `["/name"]`, `{"/name":"A"}`, "A"},
		{"prefix: parent then child", `[{"op":"replace","path":"/messages/email","value":{"subject":"A"}}]`, `[{"op":"replace","path":"/messages/email/subject","value":"B"}]`, true, `["/messages/email/subject"]`, `{"/messages/email/subject":"A"}`, "Spring"},
		{"prefix: child then parent", `[{"op":"replace","path":"/messages/email/subject","value":"A"}]`, `[{"op":"remove","path":"/messages"}]`, true, `["/messages"]`, `{"/messages":{"email":{"body":"x","subject":"A"}}}`, "Spring"},
		{"removed path is left out of values", `[{"op":"remove","path":"/messages"}]`, `[{"op":"replace","path":"/messages/email/subject","value":"B"}]`, true, `["/messages/email/subject"]`, `{}`, "Spring"},
		{"inside one array", `[{"op":"replace","path":"/list/0","value":9}]`, `[{"op":"add","path":"/list/-","value":4}]`, true, `["/list"]`, `{"/list":[9,2,3]}`, "Spring"},
		{"whole array vs inside it", `[{"op":"replace","path":"/list","value":[]}]`, `[{"op":"remove","path":"/list/1"}]`, true, `["/list"]`, `{"/list":[]}`, "Spring"},
		{"siblings do not overlap", `[{"op":"replace","path":"/messages/email/subject","value":"A"}]`, `[{"op":"replace","path":"/messages/email/body","value":"B"}]`, false, "", "", "Spring"},
		{"names that share a prefix do not overlap", `[{"op":"add","path":"/names","value":1}]`, `[{"op":"replace","path":"/name","value":"B"}]`, false, "", "", "B"},
	}
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n1, n2 := c.node(Config{}), c.node(Config{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := c.campaign("w1", doc)
				a, b := c.connect(n1, "ann", "w1", auth.Editor), c.connect(n2, "bob", "w1", auth.Editor)
				a.join(id)
				b.join(id)
				a.edit(id, 0, tc.first)
				a.expect("ack")
				b.expect("update")
				b.edit(id, 0, tc.second, "ref", 7)
				if !tc.conflict {
					if ack := b.expect("ack"); num(ack["rev"]) != 2 {
						t.Fatalf("ack %v", ack)
					}
					a.expect("update")
				} else {
					r := b.expect("refresh")
					if r["reason"] != "conflict" || num(r["rev"]) != 1 || num(r["ref"]) != 7 || jsonOf(r["paths"]) != tc.paths || jsonOf(r["values"]) != tc.values {
						t.Fatalf("refresh %v", r)
					}
					a.quiet(100 * time.Millisecond) // nothing of the loser reached anyone
				}
				snap := c.connect(n1, "x", "w1", auth.Viewer).join(id)
				if snap["doc"].(map[string]any)["name"] != tc.finalName {
					t.Fatalf("final %v", snap["doc"])
				}
			})
		}
	})
}

func TestOwnEditsNeverConflict(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n := c.node(Config{})
		id := c.campaign("w1", doc)
		a := c.connect(n, "ann", "w1", auth.Editor)
		a.join(id)
		// Three pipelined edits of one field from one base: all accepted, in order.
		for i := 0; i < 3; i++ {
			a.edit(id, 0, fmt.Sprintf(`[{"op":"replace","path":"/name","value":"v%d"}]`, i))
		}
		for i := 1; i <= 3; i++ {
			if ack := a.expect("ack"); num(ack["rev"]) != int64(i) {
				t.Fatalf("ack %v", ack)
			}
		}
		if snap := c.connect(n, "x", "w1", auth.Viewer).join(id); snap["doc"].(map[string]any)["name"] != "v2" {
			t.Fatalf("final %v", snap["doc"])
		}
	})
}

func TestIdempotentResend(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n := c.node(Config{})
		id := c.campaign("w1", doc)
		a := c.connect(n, "ann", "w1", auth.Editor)
		a.join(id)
		a.edit(id, 0, `[{"op":"add","path":"/list/-","value":4}]`, "id", "batch-1")
		ack := a.expect("ack")
		// The connection drops; the client resends the batch on a new session.
		a.conn.Close(websocket.StatusNormalClosure, "")
		a2 := c.connect(n, "ann", "w1", auth.Editor)
		a2.join(id)
		a2.edit(id, 0, `[{"op":"add","path":"/list/-","value":4}]`, "id", "batch-1", "ref", "again")
		dup := a2.expect("ack")
		if num(dup["rev"]) != num(ack["rev"]) || dup["duplicate"] != true || dup["ref"] != "again" {
			t.Fatalf("resend ack %v, first %v", dup, ack)
		}
		snap := c.connect(n, "x", "w1", auth.Viewer).join(id)
		if jsonOf(snap["doc"].(map[string]any)["list"]) != "[1,2,3,4]" || num(snap["rev"]) != 1 {
			t.Fatalf("applied twice: %v", snap)
		}
	})
}

func TestResume(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n1, n2 := c.node(Config{}), c.node(Config{})
		id := c.campaign("w1", doc)
		a, b := c.connect(n1, "ann", "w1", auth.Editor), c.connect(n1, "bob", "w1", auth.Editor)
		a.join(id)
		snap := b.join(id)
		epoch := snap["epoch"].(string)
		a.edit(id, 0, `[{"op":"replace","path":"/name","value":"one"}]`)
		a.expect("ack")
		b.expect("update")
		b.conn.Close(websocket.StatusNormalClosure, "") // b goes offline at rev 1
		for i := 2; i <= 4; i++ {
			a.edit(id, int64(i-1), fmt.Sprintf(`[{"op":"add","path":"/k%d","value":%d}]`, i, i))
			a.expect("ack")
		}
		// b comes back on another node with since: the missed updates, then joined.
		b2 := c.connect(n2, "bob", "w1", auth.Editor)
		b2.send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": epoch, "ref": "j"})
		for rev := int64(2); rev <= 4; rev++ {
			if u := b2.expect("update"); num(u["rev"]) != rev {
				t.Fatalf("replay %v", u)
			}
		}
		j := b2.expect("joined")
		if num(j["rev"]) != 4 || j["epoch"] != epoch || j["ref"] != "j" {
			t.Fatalf("joined %v", j)
		}
		// And it is live afterwards.
		a.edit(id, 4, `[{"op":"add","path":"/k5","value":5}]`)
		a.expect("ack")
		if u := b2.expect("update"); num(u["rev"]) != 5 {
			t.Fatalf("live %v", u)
		}
		// From another epoch: refresh gap, then a fresh snapshot.
		b3 := c.connect(n2, "bob", "w1", auth.Editor)
		b3.send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": "not-this-one"})
		if r := b3.expect("refresh"); r["reason"] != "gap" || num(r["rev"]) != 5 {
			t.Fatalf("refresh %v", r)
		}
		if s := b3.expect("snapshot"); num(s["rev"]) != 5 {
			t.Fatalf("snapshot %v", s)
		}
		// Beyond the current rev is a gap too.
		b4 := c.connect(n2, "bob", "w1", auth.Editor)
		b4.send(map[string]any{"type": "join", "campaign": id, "since": 99, "epoch": epoch})
		b4.expect("refresh")
		b4.expect("snapshot")
	})
}

func TestResumeBeyondKeptHistory(t *testing.T) {
	forEachRedis(t, draft.Options{Keep: 1}, func(t *testing.T, c *cluster) {
		n := c.node(Config{})
		id := c.campaign("w1", doc)
		a := c.connect(n, "ann", "w1", auth.Editor)
		snap := a.join(id)
		for i := 1; i <= 5; i++ {
			a.edit(id, int64(i-1), fmt.Sprintf(`[{"op":"add","path":"/k%d","value":%d}]`, i, i))
			a.expect("ack")
		}
		// Pretend autosave stored rev 5: the log keeps only the newest entry.
		if _, err := n.buf.Flushed(context.Background(), id, 5); err != nil {
			t.Fatal(err)
		}
		b := c.connect(n, "bob", "w1", auth.Editor)
		b.send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": snap["epoch"]})
		if r := b.expect("refresh"); r["reason"] != "gap" {
			t.Fatalf("refresh %v", r)
		}
		if s := b.expect("snapshot"); num(s["rev"]) != 5 || len(s["doc"].(map[string]any)) != 9 {
			t.Fatalf("snapshot %v", s)
		}
	})
}

func TestPresenceAcrossNodesAndExpiry(t *testing.T) {
	forEachRedis(t, draft.Options{PresenceTTL: 600 * time.Millisecond}, func(t *testing.T, c *cluster) {
		n1, n2 := c.node(Config{}), c.node(Config{})
		id := c.campaign("w1", doc)
		a, b := c.connect(n1, "ann", "w1", auth.Editor), c.connect(n2, "bob", "w1", auth.Editor)
		a.join(id)
		b.join(id)
		has := func(want ...string) func([]any) bool {
			return func(eds []any) bool {
				if len(eds) != len(want) {
					return false
				}
				for _, w := range want {
					found := false
					for _, e := range eds {
						e := e.(map[string]any)
						if e["user"].(string)+":"+e["tab"].(string) == w {
							found = true
						}
					}
					if !found {
						return false
					}
				}
				return true
			}
		}
		a.expectPresence(has("ann:", "bob:"))
		b.send(map[string]any{"type": "tab", "campaign": id, "tab": "message", "ref": 1})
		if ok := b.expect("ok"); num(ok["ref"]) != 1 {
			t.Fatalf("tab reply %v", ok)
		}
		a.expectPresence(has("ann:", "bob:message"))
		// Entries outlive no heartbeat: the live ones are kept alive by their
		// rooms across several TTLs...
		time.Sleep(1500 * time.Millisecond)
		list, err := n1.buf.Presence(context.Background(), id)
		if err != nil || len(list) != 2 {
			t.Fatalf("live entries expired: %+v %v", list, err)
		}
		// ...while a dead node's entry (no heartbeat) expires and is announced.
		n1.buf.SetPresence(context.Background(), id, draft.Presence{User: "ghost", Name: "Ghost", Session: "s-dead", Tab: "details"})
		a.expectPresence(has("ann:", "bob:message", "ghost:details"))
		a.expectPresence(has("ann:", "bob:message"))
		// Leaving removes the entry at once.
		b.send(map[string]any{"type": "leave", "campaign": id})
		b.expect("left")
		a.expectPresence(has("ann:"))
	})
}

func TestSlowConsumerCutOff(t *testing.T) {
	forEachRedis(t, draft.Options{}, func(t *testing.T, c *cluster) {
		n := c.node(Config{QueueBytes: 64 << 10})
		id := c.campaign("w1", `{"big":""}`)
		writer := c.connect(n, "ann", "w1", auth.Editor)
		watcher := c.connect(n, "bob", "w1", auth.Viewer)
		writer.join(id)
		watcher.join(id)
		// The slow one joins and then never reads again.
		ctx := context.Background()
		slow, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.srv.URL, "http"), &websocket.DialOptions{
			Subprotocols: []string{Subprotocol}, HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token("sam", "w1", auth.Viewer)}}})
		if err != nil {
			t.Fatal(err)
		}
		defer slow.CloseNow()
		slow.SetReadLimit(1 << 20)
		slow.Read(ctx) // welcome
		slow.Write(ctx, websocket.MessageText, []byte(`{"type":"join","campaign":"`+id+`"}`))
		slow.Read(ctx) // snapshot; from here on the kernel buffers fill, then the queue
		big := strings.Repeat("x", 60<<10)
		sessionsBefore := n.hub.Sessions()
		deadline := time.Now().Add(20 * time.Second)
		rev := int64(0)
		for n.hub.Sessions() == sessionsBefore && time.Now().Before(deadline) {
			writer.edit(id, rev, fmt.Sprintf(`[{"op":"replace","path":"/big","value":"%s%d"}]`, big, rev))
			writer.expect("ack")
			rev++
			// The healthy watcher keeps up.
			if u := watcher.expect("update"); num(u["rev"]) != rev {
				t.Fatalf("watcher got %v", u)
			}
		}
		if n.hub.Sessions() != sessionsBefore-1 {
			t.Fatalf("slow consumer not cut off after %d updates", rev)
		}
		t.Logf("slow consumer cut off after %d updates of 60 KiB", rev)
		// The others go on.
		writer.edit(id, rev, `[{"op":"replace","path":"/big","value":"after"}]`)
		writer.expect("ack")
		watcher.expect("update")
	})
}
