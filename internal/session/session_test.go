package session_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/draft"
)

const doc = `{"name":"Spring","messages":{"email":{"subject":"Hi","body":"x"}},"list":[1,2,3],"canvas":{"transitions":[]}}`

func TestFanout(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a, b := c.Connect(n, "ann", "w1", auth.Editor), c.Connect(n, "bob", "w1", auth.Viewer)
		snap := a.Join(id)
		if sessiontest.Num(snap["rev"]) != 0 || snap["status"] != "draft" || snap["epoch"] == "" || sessiontest.JSONOf(snap["doc"].(map[string]any)["list"]) != "[1,2,3]" {
			t.Fatalf("snapshot %v", snap)
		}
		b.Join(id)
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"Summer"}]`, "ref", "r1")
		ack := a.Expect("ack")
		if sessiontest.Num(ack["rev"]) != 1 || ack["ref"] != "r1" {
			t.Fatalf("ack %v", ack)
		}
		u := b.Expect("update")
		by := u["by"].(map[string]any)
		if sessiontest.Num(u["rev"]) != 1 || u["campaign"] != id || sessiontest.JSONOf(u["ops"]) != `[{"op":"replace","path":"/name","value":"Summer"}]` || by["user"] != "ann" || by["name"] != "Ann" {
			t.Fatalf("update %v", u)
		}
		a.Quiet(100 * time.Millisecond) // the author gets its ack, not its own update
		// A late joiner sees the edit in its snapshot.
		d := c.Connect(n, "dee", "w1", auth.Viewer)
		snap = d.Join(id)
		if sessiontest.Num(snap["rev"]) != 1 || snap["doc"].(map[string]any)["name"] != "Summer" {
			t.Fatalf("late snapshot %v", snap)
		}
	})
}

func TestFanoutAcrossNodes(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, n2 := c.Node(session.Config{}), c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a, b := c.Connect(n1, "ann", "w1", auth.Editor), c.Connect(n2, "bob", "w1", auth.Editor)
		a.Join(id)
		b.Join(id)
		// Edits from both nodes, interleaved; each side sees the other's in rev order.
		for i := 0; i < 20; i++ {
			a.Edit(id, int64(2*i), fmt.Sprintf(`[{"op":"add","path":"/a%d","value":%d}]`, i, i))
			if rev := sessiontest.Num(a.Expect("ack")["rev"]); rev != int64(2*i+1) {
				t.Fatalf("a ack %d", rev)
			}
			if u := b.Expect("update"); sessiontest.Num(u["rev"]) != int64(2*i+1) {
				t.Fatalf("b update %v", u)
			}
			b.Edit(id, int64(2*i+1), fmt.Sprintf(`[{"op":"add","path":"/b%d","value":%d}]`, i, i))
			if rev := sessiontest.Num(b.Expect("ack")["rev"]); rev != int64(2*i+2) {
				t.Fatalf("b ack %d", rev)
			}
			if u := a.Expect("update"); sessiontest.Num(u["rev"]) != int64(2*i+2) {
				t.Fatalf("a update %v", u)
			}
		}
		// Both nodes hold the same draft.
		s1, s2 := c.Connect(n1, "x", "w1", auth.Viewer).Join(id), c.Connect(n2, "y", "w1", auth.Viewer).Join(id)
		if sessiontest.JSONOf(s1["doc"]) != sessiontest.JSONOf(s2["doc"]) || sessiontest.Num(s1["rev"]) != 40 || sessiontest.Num(s2["rev"]) != 40 {
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
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, n2 := c.Node(session.Config{}), c.Node(session.Config{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := c.Campaign("w1", doc)
				a, b := c.Connect(n1, "ann", "w1", auth.Editor), c.Connect(n2, "bob", "w1", auth.Editor)
				a.Join(id)
				b.Join(id)
				a.Edit(id, 0, tc.first)
				a.Expect("ack")
				b.Expect("update")
				b.Edit(id, 0, tc.second, "ref", 7)
				if !tc.conflict {
					if ack := b.Expect("ack"); sessiontest.Num(ack["rev"]) != 2 {
						t.Fatalf("ack %v", ack)
					}
					a.Expect("update")
				} else {
					r := b.Expect("refresh")
					if r["reason"] != "conflict" || sessiontest.Num(r["rev"]) != 1 || sessiontest.Num(r["ref"]) != 7 || sessiontest.JSONOf(r["paths"]) != tc.paths || sessiontest.JSONOf(r["values"]) != tc.values {
						t.Fatalf("refresh %v", r)
					}
					a.Quiet(100 * time.Millisecond) // nothing of the loser reached anyone
				}
				snap := c.Connect(n1, "x", "w1", auth.Viewer).Join(id)
				if snap["doc"].(map[string]any)["name"] != tc.finalName {
					t.Fatalf("final %v", snap["doc"])
				}
			})
		}
	})
}

func TestOwnEditsNeverConflict(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		// Three pipelined edits of one field from one base: all accepted, in order.
		for i := 0; i < 3; i++ {
			a.Edit(id, 0, fmt.Sprintf(`[{"op":"replace","path":"/name","value":"v%d"}]`, i))
		}
		for i := 1; i <= 3; i++ {
			if ack := a.Expect("ack"); sessiontest.Num(ack["rev"]) != int64(i) {
				t.Fatalf("ack %v", ack)
			}
		}
		if snap := c.Connect(n, "x", "w1", auth.Viewer).Join(id); snap["doc"].(map[string]any)["name"] != "v2" {
			t.Fatalf("final %v", snap["doc"])
		}
	})
}

func TestIdempotentResend(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		a.Edit(id, 0, `[{"op":"add","path":"/list/-","value":4}]`, "id", "batch-1")
		ack := a.Expect("ack")
		// The connection drops; the client resends the batch on a new session.
		a.Conn.Close(websocket.StatusNormalClosure, "")
		a2 := c.Connect(n, "ann", "w1", auth.Editor)
		a2.Join(id)
		a2.Edit(id, 0, `[{"op":"add","path":"/list/-","value":4}]`, "id", "batch-1", "ref", "again")
		dup := a2.Expect("ack")
		if sessiontest.Num(dup["rev"]) != sessiontest.Num(ack["rev"]) || dup["duplicate"] != true || dup["ref"] != "again" {
			t.Fatalf("resend ack %v, first %v", dup, ack)
		}
		snap := c.Connect(n, "x", "w1", auth.Viewer).Join(id)
		if sessiontest.JSONOf(snap["doc"].(map[string]any)["list"]) != "[1,2,3,4]" || sessiontest.Num(snap["rev"]) != 1 {
			t.Fatalf("applied twice: %v", snap)
		}
	})
}

func TestResume(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, n2 := c.Node(session.Config{}), c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a, b := c.Connect(n1, "ann", "w1", auth.Editor), c.Connect(n1, "bob", "w1", auth.Editor)
		a.Join(id)
		snap := b.Join(id)
		epoch := snap["epoch"].(string)
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"one"}]`)
		a.Expect("ack")
		b.Expect("update")
		b.Conn.Close(websocket.StatusNormalClosure, "") // b goes offline at rev 1
		for i := 2; i <= 4; i++ {
			a.Edit(id, int64(i-1), fmt.Sprintf(`[{"op":"add","path":"/k%d","value":%d}]`, i, i))
			a.Expect("ack")
		}
		// b comes back on another node with since: the missed updates, then joined.
		b2 := c.Connect(n2, "bob", "w1", auth.Editor)
		b2.Send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": epoch, "ref": "j"})
		for rev := int64(2); rev <= 4; rev++ {
			if u := b2.Expect("update"); sessiontest.Num(u["rev"]) != rev {
				t.Fatalf("replay %v", u)
			}
		}
		j := b2.Expect("joined")
		if sessiontest.Num(j["rev"]) != 4 || j["epoch"] != epoch || j["ref"] != "j" {
			t.Fatalf("joined %v", j)
		}
		// And it is live afterwards.
		a.Edit(id, 4, `[{"op":"add","path":"/k5","value":5}]`)
		a.Expect("ack")
		if u := b2.Expect("update"); sessiontest.Num(u["rev"]) != 5 {
			t.Fatalf("live %v", u)
		}
		// From another epoch: refresh gap, then a fresh snapshot.
		b3 := c.Connect(n2, "bob", "w1", auth.Editor)
		b3.Send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": "not-this-one"})
		if r := b3.Expect("refresh"); r["reason"] != "gap" || sessiontest.Num(r["rev"]) != 5 {
			t.Fatalf("refresh %v", r)
		}
		if s := b3.Expect("snapshot"); sessiontest.Num(s["rev"]) != 5 {
			t.Fatalf("snapshot %v", s)
		}
		// Beyond the current rev is a gap too.
		b4 := c.Connect(n2, "bob", "w1", auth.Editor)
		b4.Send(map[string]any{"type": "join", "campaign": id, "since": 99, "epoch": epoch})
		b4.Expect("refresh")
		b4.Expect("snapshot")
	})
}

func TestResumeBeyondKeptHistory(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{Keep: 1}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		snap := a.Join(id)
		for i := 1; i <= 5; i++ {
			a.Edit(id, int64(i-1), fmt.Sprintf(`[{"op":"add","path":"/k%d","value":%d}]`, i, i))
			a.Expect("ack")
		}
		// Pretend autosave stored rev 5: the log keeps only the newest entry.
		if _, err := n.Buf.Flushed(context.Background(), id, 5); err != nil {
			t.Fatal(err)
		}
		b := c.Connect(n, "bob", "w1", auth.Editor)
		b.Send(map[string]any{"type": "join", "campaign": id, "since": 1, "epoch": snap["epoch"]})
		if r := b.Expect("refresh"); r["reason"] != "gap" {
			t.Fatalf("refresh %v", r)
		}
		if s := b.Expect("snapshot"); sessiontest.Num(s["rev"]) != 5 || len(s["doc"].(map[string]any)) != 9 {
			t.Fatalf("snapshot %v", s)
		}
	})
}

func TestPresenceAcrossNodesAndExpiry(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{PresenceTTL: 600 * time.Millisecond}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, n2 := c.Node(session.Config{}), c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a, b := c.Connect(n1, "ann", "w1", auth.Editor), c.Connect(n2, "bob", "w1", auth.Editor)
		a.Join(id)
		b.Join(id)
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
		a.ExpectPresence(has("ann:", "bob:"))
		b.Send(map[string]any{"type": "tab", "campaign": id, "tab": "message", "ref": 1})
		if ok := b.Expect("ok"); sessiontest.Num(ok["ref"]) != 1 {
			t.Fatalf("tab reply %v", ok)
		}
		a.ExpectPresence(has("ann:", "bob:message"))
		// focus names the field bob is in, without a save.
		b.Send(map[string]any{"type": "focus", "campaign": id, "path": "/name", "ref": 2})
		b.Expect("ok")
		a.ExpectPresence(func(eds []any) bool {
			for _, e := range eds {
				if e := e.(map[string]any); e["user"] == "bob" && e["field"] == "/name" && e["tab"] == "message" {
					return true
				}
			}
			return false
		})
		b.Send(map[string]any{"type": "focus", "campaign": id, "path": "name", "ref": 3})
		if e := b.Expect("error"); e["code"] != "bad_request" || sessiontest.Num(e["ref"]) != 3 {
			t.Fatalf("bad focus path: %v", e)
		}
		// Entries outlive no heartbeat: the live ones are kept alive by their
		// rooms across several TTLs...
		time.Sleep(1500 * time.Millisecond)
		list, err := n1.Buf.Presence(context.Background(), id)
		if err != nil || len(list) != 2 {
			t.Fatalf("live entries expired: %+v %v", list, err)
		}
		// ...while a dead node's entry (no heartbeat) expires and is announced.
		n1.Buf.SetPresence(context.Background(), id, draft.Presence{User: "ghost", Name: "Ghost", Session: "s-dead", Tab: "details"})
		a.ExpectPresence(has("ann:", "bob:message", "ghost:details"))
		a.ExpectPresence(has("ann:", "bob:message"))
		// Leaving removes the entry at once.
		b.Send(map[string]any{"type": "leave", "campaign": id})
		b.Expect("left")
		a.ExpectPresence(has("ann:"))
	})
}

func TestSlowConsumerCutOff(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{QueueBytes: 64 << 10})
		id := c.Campaign("w1", `{"big":""}`)
		writer := c.Connect(n, "ann", "w1", auth.Editor)
		watcher := c.Connect(n, "bob", "w1", auth.Viewer)
		writer.Join(id)
		watcher.Join(id)
		// The slow one joins and then never reads again.
		ctx := context.Background()
		slow, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.Srv.URL, "http"), &websocket.DialOptions{
			Subprotocols: []string{protocol.Subprotocol}, HTTPHeader: http.Header{"Authorization": {"Bearer " + c.Token("sam", "w1", auth.Viewer)}}})
		if err != nil {
			t.Fatal(err)
		}
		defer slow.CloseNow()
		slow.SetReadLimit(1 << 20)
		slow.Read(ctx) // welcome
		slow.Write(ctx, websocket.MessageText, []byte(`{"type":"join","campaign":"`+id+`"}`))
		slow.Read(ctx) // snapshot; from here on the kernel buffers fill, then the queue
		big := strings.Repeat("x", 60<<10)
		sessionsBefore := n.Hub.Sessions()
		deadline := time.Now().Add(20 * time.Second)
		rev := int64(0)
		for n.Hub.Sessions() == sessionsBefore && time.Now().Before(deadline) {
			writer.Edit(id, rev, fmt.Sprintf(`[{"op":"replace","path":"/big","value":"%s%d"}]`, big, rev))
			writer.Expect("ack")
			rev++
			// The healthy watcher keeps up.
			if u := watcher.Expect("update"); sessiontest.Num(u["rev"]) != rev {
				t.Fatalf("watcher got %v", u)
			}
		}
		if n.Hub.Sessions() != sessionsBefore-1 {
			t.Fatalf("slow consumer not cut off after %d updates", rev)
		}
		t.Logf("slow consumer cut off after %d updates of 60 KiB", rev)
		// The others go on.
		writer.Edit(id, rev, `[{"op":"replace","path":"/big","value":"after"}]`)
		writer.Expect("ack")
		watcher.Expect("update")
	})
}

// TestLiveCampaignList: a session watching its workspace's campaign list
// hears, from another node, a rename as it is typed (coalesced), a
// creation and a status change; another workspace hears nothing, and after
// campaigns.unwatch nothing more arrives.
func TestLiveCampaignList(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, n2 := c.Node(session.Config{}), c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a := c.Connect(n1, "ann", "w1", auth.Editor)
		a.Join(id)
		watch := func(cl *sessiontest.Client) {
			cl.Send(map[string]any{"type": "campaigns.watch", "ref": "w"})
			cl.Expect("ok")
		}
		bob, eve := c.Connect(n2, "bob", "w1", auth.Viewer), c.Connect(n2, "eve", "w2", auth.Editor)
		watch(bob)
		watch(eve)

		// Typed letter by letter: the list hears the last name, with its rev,
		// without an announcement per letter.
		for i, name := range []string{"S", "Su", "Sum", "Summer"} {
			a.Edit(id, int64(i), `[{"op":"replace","path":"/name","value":"`+name+`"}]`)
			a.Expect("ack")
		}
		var last map[string]any
		for got := 0; last == nil || last["name"] != "Summer"; got++ {
			if got == 4 {
				t.Fatalf("rename never reached Summer: %v", last)
			}
			last = bob.Expect("campaign")
		}
		if last["change"] != "renamed" || last["id"] != id || sessiontest.Num(last["rev"]) != 4 || last["by"] != "ann" || last["workspace"] != "w1" {
			t.Fatalf("rename: %v", last)
		}
		// An edit elsewhere in the document is not a list change.
		a.Edit(id, 4, `[{"op":"replace","path":"/list","value":[1]}]`)
		a.Expect("ack")

		for _, ev := range []protocol.CampaignListed{
			{Workspace: "w1", Change: protocol.ListCreated, ID: "c_new", Name: "Autumn", Status: "draft", By: "ann"},
			{Workspace: "w1", Change: protocol.ListStatus, ID: id, Status: "active", By: "ann"},
		} {
			if err := n1.Hub.AnnounceCampaign(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if got := bob.Expect("campaign"); got["change"] != ev.Change || got["id"] != ev.ID {
				t.Fatalf("want %s of %s, got %v", ev.Change, ev.ID, got)
			}
		}
		eve.Quiet(300 * time.Millisecond) // another workspace: nothing

		bob.Send(map[string]any{"type": "campaigns.unwatch", "ref": "u"})
		bob.Expect("ok")
		n1.Hub.AnnounceCampaign(context.Background(), protocol.CampaignListed{Workspace: "w1", Change: protocol.ListCreated, ID: "c_later", Name: "Later"})
		bob.Quiet(300 * time.Millisecond)
	})
}
