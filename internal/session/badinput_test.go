package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
)

// Each bad request gets its error and changes nothing; the session stays
// usable afterwards.
func TestBadRequests(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{Limits: campaign.Limits{MaxDocBytes: 4096}})
		id := c.Campaign("w1", doc)
		other := c.Campaign("w2", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		cases := []struct {
			name, frame, code string
		}{
			{"malformed JSON", `{"type":"edit",`, "bad_request"},
			{"not an object", `[1,2]`, "bad_request"},
			{"missing type", `{"campaign":"x"}`, "bad_request"},
			{"unknown type", `{"type":"frobnicate","ref":1}`, "bad_request"},
			{"bad ref", `{"type":"join","ref":{"x":1}}`, "bad_request"},
			{"edit without join", `{"type":"edit","campaign":"` + other + `","base":0,"ops":[{"op":"add","path":"/x","value":1}]}`, "bad_request"},
			{"bad pointer", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"add","path":"x","value":1}]}`, "bad_request"},
			{"bad escape", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"add","path":"/a~9","value":1}]}`, "bad_request"},
			{"root", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"replace","path":"","value":{}}]}`, "bad_request"},
			{"unsupported op", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"move","from":"/name","path":"/x"}]}`, "bad_request"},
			{"empty ops", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[]}`, "bad_request"},
			{"missing base", `{"type":"edit","campaign":"` + id + `","ops":[{"op":"add","path":"/x","value":1}]}`, "bad_request"},
			{"base above rev", `{"type":"edit","campaign":"` + id + `","base":5,"ops":[{"op":"add","path":"/x","value":1}]}`, "bad_request"},
			{"one invalid op refuses the batch", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"replace","path":"/name","value":"X"},{"op":"remove","path":"/nope"}]}`, "bad_request"},
			{"failing test", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"test","path":"/name","value":"nope"},{"op":"replace","path":"/name","value":"X"}]}`, "bad_request"},
			{"document too large", `{"type":"edit","campaign":"` + id + `","base":0,"ops":[{"op":"add","path":"/pad","value":"` + strings.Repeat("p", 5000) + `"}]}`, "too_large"},
			{"bad campaign id", `{"type":"join","campaign":"../etc"}`, "bad_request"},
			{"another workspace's campaign", `{"type":"join","campaign":"` + other + `"}`, "not_found"},
			{"missing campaign", `{"type":"join","campaign":"c_nope"}`, "not_found"},
			{"renewal with a forged token", `{"type":"hello","token":"x"}`, "unauthorized"},
			{"renewal as another user", `{"type":"hello","token":"` + c.Token("mallory", "w1", auth.Admin) + `"}`, "forbidden"},
			{"bad batch id", `{"type":"edit","campaign":"` + id + `","base":0,"id":{"a":1},"ops":[{"op":"add","path":"/x","value":1}]}`, "bad_request"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a.SendRaw(tc.frame)
				e := a.Expect("error")
				if e["code"] != tc.code || e["message"] == "" {
					t.Fatalf("got %v", e)
				}
			})
		}
		// A binary frame.
		a.Conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
		if e := a.Expect("error"); e["code"] != "bad_request" {
			t.Fatalf("binary: %v", e)
		}
		// Nothing changed, and the session still works.
		snap := c.Connect(n, "x", "w1", auth.Viewer).Join(id)
		if sessiontest.Num(snap["rev"]) != 0 || sessiontest.JSONOf(snap["doc"]) != sessiontest.JSONOf(mustJSON(doc)) {
			t.Fatalf("changed: %v", snap)
		}
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"ok"}]`)
		a.Expect("ack")
	})
}

func mustJSON(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func TestRoles(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		v := c.Connect(n, "vic", "w1", auth.Viewer)
		v.Join(id) // viewers may join and switch tabs
		v.Send(map[string]any{"type": "tab", "campaign": id, "tab": "audience"})
		v.Expect("ok")
		v.Edit(id, 0, `[{"op":"replace","path":"/name","value":"X"}]`)
		if e := v.Expect("error"); e["code"] != "forbidden" {
			t.Fatalf("viewer edit: %v", e)
		}
		if s := c.Connect(n, "x", "w1", auth.Viewer).Join(id); sessiontest.Num(s["rev"]) != 0 {
			t.Fatalf("viewer changed the draft: %v", s)
		}
	})
}

func TestArchivedRefusesEdits(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{})
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Admin)
		a.Join(id)
		if _, err := c.Store.Transition(context.Background(), "w1", id, campaign.Archive); err != nil {
			t.Fatal(err)
		}
		n.Buf.SetStatus(context.Background(), id, "archived")
		if st := a.Expect("status"); st["status"] != "archived" {
			t.Fatalf("status %v", st)
		}
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"X"}]`)
		if e := a.Expect("error"); e["code"] != "conflict" {
			t.Fatalf("archived edit: %v", e)
		}
	})
}

func TestAuthentication(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{HelloTimeout: 300 * time.Millisecond})
		id := c.Campaign("w1", doc)

		// Nothing but hello before authentication.
		cl, _, err := sessiontest.Dial(t, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		cl.Send(map[string]any{"type": "join", "campaign": id, "ref": "j"})
		if e := cl.Expect("error"); e["code"] != "unauthorized" || e["ref"] != "j" {
			t.Fatalf("join before hello: %v", e)
		}
		// A forged token.
		forger, _ := auth.NewSigner([]byte("some-other-secret-entirely-123"))
		forged, _ := forger.Sign(auth.Claims{User: "u", Workspace: "w1", Role: auth.Admin}, time.Hour)
		cl.Send(map[string]any{"type": "hello", "token": forged})
		if e := cl.Expect("error"); e["code"] != "unauthorized" {
			t.Fatalf("forged hello: %v", e)
		}
		// No valid hello in time: closed with 1008.
		select {
		case <-cl.In:
		case <-time.After(2 * time.Second):
		}
		for range cl.In {
		}
		if err := <-cl.Err; websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("want close 1008, got %v", err)
		}

		// A good bearer header: welcome, unprompted.
		good, _, err := sessiontest.Dial(t, n, http.Header{"Authorization": {"Bearer " + c.Token("ann", "w1", auth.Editor)}})
		if err != nil {
			t.Fatal(err)
		}
		if w := good.Expect("welcome"); w["user"] != "ann" || w["workspace"] != "w1" || w["role"] != "editor" || w["session"] == "" {
			t.Fatalf("welcome %v", w)
		}
		time.Sleep(500 * time.Millisecond) // past the hello timeout: still open
		good.Join(id)

		// Refused before the upgrade.
		expired, _ := c.Signer.Sign(auth.Claims{User: "u", Workspace: "w1", Role: auth.Editor}, -time.Minute)
		for name, tc := range map[string]struct {
			header http.Header
			status int
		}{
			"expired bearer": {http.Header{"Authorization": {"Bearer " + expired}}, 401},
			"forged bearer":  {http.Header{"Authorization": {"Bearer " + forged}}, 401},
			"foreign origin": {http.Header{"Origin": {"https://evil.example"}}, 403},
		} {
			_, resp, err := sessiontest.Dial(t, n, tc.header)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Errorf("%s: want %d, got %v %v", name, tc.status, resp, err)
			}
		}
		// Without the subprotocol.
		req, _ := http.NewRequest("GET", n.Srv.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 400 {
			t.Fatalf("no subprotocol: %v %v", resp, err)
		}
	})
}

func TestFrameAndRateLimits(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n := c.Node(session.Config{MaxMessage: 1024, RatePerSec: 5, RateBurst: 10})
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		// Over the burst: rate_limited errors, and the session stays open.
		for i := 0; i < 30; i++ {
			a.Send(map[string]any{"type": "tab", "campaign": id, "tab": "x", "ref": i})
		}
		limited := 0
		refs := map[int64]bool{}
		for i := 0; i < 30; i++ {
			m := a.Next()
			if refs[sessiontest.Num(m["ref"])] {
				t.Fatalf("ref %v answered twice", m["ref"])
			}
			refs[sessiontest.Num(m["ref"])] = true
			if m["type"] == "error" && m["code"] == "rate_limited" {
				limited++
			}
		}
		// Every refused request is named by its ref.
		if len(refs) != 30 {
			t.Fatalf("refs answered: %v", refs)
		}
		if limited < 15 {
			t.Fatalf("only %d of 30 rate limited", limited)
		}
		time.Sleep(time.Second)
		a.Send(map[string]any{"type": "tab", "campaign": id, "tab": "y"})
		a.Expect("ok")
		// An oversized frame closes with 1009.
		a.SendRaw(`{"type":"tab","campaign":"` + id + `","tab":"` + strings.Repeat("z", 2000) + `"}`)
		for range a.In {
		}
		if err := <-a.Err; websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			var ce websocket.CloseError
			errors.As(err, &ce)
			t.Fatalf("want close 1009, got %v", err)
		}
	})
}
