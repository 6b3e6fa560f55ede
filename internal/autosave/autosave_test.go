package autosave_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/autosave"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/commands"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"
	"github.com/collab-dev/collab/internal/store"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const doc = `{"name":"Spring","messages":{"email":{"subject":"Hi","body":"x"}}}`

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// flakyStore fails draft saves while fail is set, as a stopped database would.
type flakyStore struct {
	store.Store
	fail  atomic.Bool
	saves atomic.Int64
}

func (f *flakyStore) SaveDraft(ctx context.Context, d store.DraftSave) (int64, error) {
	if f.fail.Load() {
		return 0, errcode.New(errcode.Unavailable, "the database is unavailable")
	}
	f.saves.Add(1)
	return f.Store.SaveDraft(ctx, d)
}

// node starts a node whose hub has autosave wired as in production.
func node(c *sessiontest.Cluster, opts autosave.Options, st autosave.Store) (*sessiontest.Node, *autosave.Flusher) {
	var f *autosave.Flusher
	n := c.Node(session.Config{}, func(n *sessiontest.Node) {
		if st == nil {
			st = c.Store
		}
		f = autosave.New(n.Buf, st, opts, quiet)
		n.Hub.SetSaver(f)
		f.SetHolder(n.Hub)
		(&commands.Autosave{Flusher: f, Publisher: c.Store, Staging: n.Buf, Limits: campaign.DefaultLimits, Log: quiet}).Register(n.Hub)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.Run(ctx) }()
		n.OnStop(func() { cancel(); <-done })
	})
	return n, f
}

func saved(t *testing.T, c *sessiontest.Cluster, id string) *campaign.Campaign {
	t.Helper()
	cp, err := c.Store.Campaign(context.Background(), "w1", id)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func field(t *testing.T, raw json.RawMessage, name string) any {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[name]
}

// expectSaved waits for a saved push with the trigger (skipping others).
func expectSaved(t *testing.T, cl *sessiontest.Client, trigger string) map[string]any {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-cl.In:
			if !ok {
				t.Fatal("closed")
			}
			if m["type"] == "saved" && m["trigger"] == trigger {
				return m
			}
		case <-deadline:
			t.Fatalf("no saved with trigger %s", trigger)
		}
	}
}

func TestTimerFlush(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		const interval = 500 * time.Millisecond
		n, _ := node(c, autosave.Options{Interval: interval}, nil)
		id := c.Campaign("w1", doc)
		a, b := c.Connect(n, "ann", "w1", auth.Editor), c.Connect(n, "bob", "w1", auth.Viewer)
		if snap := a.Join(id); sessiontest.Num(snap["saved_rev"]) != 0 {
			t.Fatalf("fresh snapshot saved_rev %v", snap["saved_rev"])
		}
		b.Join(id)
		start := time.Now()
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"Summer"}]`)
		want(t, a, "ack")
		s := expectSaved(t, b, "timer")
		took := time.Since(start)
		if took > interval+time.Second {
			t.Fatalf("timer flush took %v, over interval + 1 s", took)
		}
		cp := saved(t, c, id)
		if field(t, cp.Draft, "name") != "Summer" || cp.Rev != 1 || cp.Version != 2 || sessiontest.Num(s["version"]) != 2 || sessiontest.Num(s["rev"]) != 1 {
			t.Fatalf("store %+v saved %v", cp, s)
		}
		t.Logf("edit durable after %v (interval %v)", took, interval)
		// A session joining now learns that everything it sees is saved.
		late := c.Connect(n, "cid", "w1", auth.Viewer)
		if snap := late.Join(id); sessiontest.Num(snap["saved_rev"]) != 1 || sessiontest.Num(snap["rev"]) != 1 {
			t.Fatalf("snapshot after the flush: rev %v saved_rev %v", snap["rev"], snap["saved_rev"])
		}
		// Nothing dirty: no further version.
		time.Sleep(2 * interval)
		if cp := saved(t, c, id); cp.Version != 2 {
			t.Fatalf("clean draft saved again: version %d", cp.Version)
		}
	})
}

func TestTriggers(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		// A long interval: only the triggers save.
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		id, a, w := c.Pair(n, doc, "wes", auth.Viewer)
		rev := int64(0)
		edit := func(v string) {
			rev++
			a.Edit(id, rev-1, `[{"op":"replace","path":"/name","value":"`+v+`"}]`)
			want(t, a, "ack")
		}

		edit("tab")
		a.Send(map[string]any{"type": "tab", "campaign": id, "tab": "message"})
		want(t, a, "ok")
		expectSaved(t, w, "tab")
		if field(t, saved(t, c, id).Draft, "name") != "tab" {
			t.Fatal("tab did not save")
		}

		edit("manual")
		a.Send(map[string]any{"type": "save", "campaign": id, "ref": "s1"})
		reply := a.Expect("saved")
		for reply["ref"] != "s1" { // broadcasts may come first; the reply follows
			reply = a.Expect("saved")
		}
		// Durable on reply: the store holds it already.
		cp := saved(t, c, id)
		if reply["ref"] != "s1" || reply["trigger"] != "manual" || field(t, cp.Draft, "name") != "manual" || sessiontest.Num(reply["version"]) != cp.Version {
			t.Fatalf("manual save: reply %v store %+v", reply, cp)
		}
		expectSaved(t, w, "manual")
		// A save with nothing new answers at once, adding no version. Its
		// reply is told from the earlier broadcast by its ref.
		a.Send(map[string]any{"type": "save", "campaign": id, "ref": "s2"})
		r := a.Expect("saved")
		for r["ref"] != "s2" {
			r = a.Expect("saved")
		}
		if sessiontest.Num(r["version"]) != cp.Version {
			t.Fatalf("empty save: %v", r)
		}

		// The viewer may not save.
		w.Send(map[string]any{"type": "save", "campaign": id})
		if e := want(t, w, "error"); e["code"] != "forbidden" {
			t.Fatalf("viewer save: %v", e)
		}

		edit("leave")
		w.Send(map[string]any{"type": "leave", "campaign": id})
		for m := w.Next(); m["type"] != "left"; m = w.Next() {
		}
		a.Send(map[string]any{"type": "leave", "campaign": id})
		want(t, a, "left")
		deadline := time.Now().Add(5 * time.Second)
		for field(t, saved(t, c, id).Draft, "name") != "leave" {
			if time.Now().After(deadline) {
				t.Fatal("the last session leaving did not save")
			}
			time.Sleep(20 * time.Millisecond)
		}
		vs, _ := c.Store.Versions(context.Background(), "w1", id)
		got := []string{}
		for _, v := range vs {
			got = append(got, string(v.Trigger))
		}
		if sessiontest.JSONOf(got) != `["leave","manual","tab","create"]` {
			t.Fatalf("history triggers %v", got)
		}
		if vs[0].By != "ann" || sessiontest.JSONOf(vs[0].Authors) != `["ann"]` || vs[0].RevFrom != 3 || vs[0].Rev != 3 {
			t.Fatalf("history entry %+v", vs[0])
		}
	})
}

func TestLifecycleRules(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		ctx := context.Background()
		for _, tc := range []struct {
			name   string
			steps  []campaign.Action
			status campaign.Status
		}{
			{"draft saves into the draft", nil, campaign.Draft},
			{"active saves into the draft, live untouched", []campaign.Action{campaign.Launch}, campaign.Active},
			{"stopped saves and stays stopped", []campaign.Action{campaign.Launch, campaign.Stop}, campaign.Stopped},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := c.Campaign("w1", doc)
				for _, a := range tc.steps {
					if _, err := c.Store.Transition(ctx, "w1", id, a); err != nil {
						t.Fatal(err)
					}
				}
				before := saved(t, c, id)
				a := c.Connect(n, "ann", "w1", auth.Editor)
				if snap := a.Join(id); snap["status"] != string(tc.status) {
					t.Fatalf("status %v", snap["status"])
				}
				a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"edited"}]`)
				want(t, a, "ack")
				a.Send(map[string]any{"type": "save", "campaign": id})
				a.Expect("saved")
				after := saved(t, c, id)
				if after.Status != tc.status || field(t, after.Draft, "name") != "edited" || string(after.Live) != string(before.Live) {
					t.Fatalf("after save: %+v (before %+v)", after, before)
				}
			})
		}
	})
}

func TestPublish(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		id, a, w := c.Pair(n, doc, "wes", auth.Viewer)
		a.Send(map[string]any{"type": "publish", "campaign": id})
		if e := want(t, a, "error"); e["code"] != "conflict" {
			t.Fatalf("publish a draft campaign: %v", e)
		}
		if _, err := c.Store.Transition(context.Background(), "w1", id, campaign.Launch); err != nil {
			t.Fatal(err)
		}
		n.Buf.SetStatus(context.Background(), id, "active")
		want(t, a, "status")
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"v2"}]`)
		want(t, a, "ack")
		if cp := saved(t, c, id); field(t, cp.Live, "name") != "Spring" {
			t.Fatalf("live changed before publish: %s", cp.Live)
		}
		a.Send(map[string]any{"type": "publish", "campaign": id, "ref": 9})
		p := want(t, a, "published")
		cp := saved(t, c, id)
		if sessiontest.Num(p["ref"]) != 9 || sessiontest.Num(p["version"]) != cp.Version || field(t, cp.Live, "name") != "v2" || cp.Status != campaign.Active {
			t.Fatalf("published %v store %+v", p, cp)
		}
		// Publishing saves the draft (one version), then makes it live (another).
		if s := expectSaved(t, w, "publish"); sessiontest.Num(s["version"]) != cp.Version-1 {
			t.Fatalf("saved %v", s)
		}
		if s := expectSaved(t, w, "publish"); sessiontest.Num(s["version"]) != cp.Version {
			t.Fatalf("saved %v", s)
		}
	})
}

func TestFullScreenEditor(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: 200 * time.Millisecond}, nil)
		id, a, w := c.Pair(n, doc, "wes", auth.Viewer)
		const path = "/messages/email/body"
		a.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		if ok := want(t, a, "ok"); ok["staged"] != nil {
			t.Fatalf("nothing staged yet: %v", ok)
		}
		w.ExpectPresence(func(eds []any) bool {
			for _, e := range eds {
				if e.(map[string]any)["editing"] == path {
					return true
				}
			}
			return false
		})
		a.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "<h1>draft one</h1>"})
		want(t, a, "ok")
		// Not broadcast, not saved: past several timer intervals the store
		// still has the old body and the watcher saw nothing but presence.
		w.Quiet(700 * time.Millisecond)
		if cp := saved(t, c, id); field(t, cp.Draft, "messages").(map[string]any)["email"].(map[string]any)["body"] != "x" || cp.Version != 1 {
			t.Fatalf("staged content reached the store: %s", cp.Draft)
		}
		// The tab closes; a new session of the same user gets it back.
		a.Conn.CloseNow()
		a2 := c.Connect(n, "ann", "w1", auth.Editor)
		a2.Join(id)
		a2.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		if ok := want(t, a2, "ok"); ok["staged"] != "<h1>draft one</h1>" {
			t.Fatalf("staged value not offered back: %v", ok)
		}
		a2.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "<h1>final</h1>"})
		want(t, a2, "ok")
		a2.Send(map[string]any{"type": "editor.done", "campaign": id, "path": path, "ref": "d"})
		if ack := want(t, a2, "ack"); ack["ref"] != "d" {
			t.Fatalf("done: %v", ack)
		}
		if u := want(t, w, "update"); sessiontest.JSONOf(u["ops"]) != `[{"op":"replace","path":"/messages/email/body","value":"\u003ch1\u003efinal\u003c/h1\u003e"}]` {
			t.Fatalf("update %v", u)
		}
		expectSaved(t, w, "editor")
		if body := field(t, saved(t, c, id).Draft, "messages").(map[string]any)["email"].(map[string]any)["body"]; body != "<h1>final</h1>" {
			t.Fatalf("after done: %v", body)
		}
		// Done cleared it; cancel drops a new one.
		a2.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		if ok := want(t, a2, "ok"); ok["staged"] != nil {
			t.Fatalf("still staged after done: %v", ok)
		}
		a2.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "scrap"})
		want(t, a2, "ok")
		a2.Send(map[string]any{"type": "editor.cancel", "campaign": id, "path": path})
		want(t, a2, "ok")
		a2.Send(map[string]any{"type": "editor.done", "campaign": id, "path": path})
		if e := want(t, a2, "error"); e["code"] != "bad_request" {
			t.Fatalf("done after cancel: %v", e)
		}
		// A viewer cannot stage.
		w.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "x"})
		if e := want(t, w, "error"); e["code"] != "forbidden" {
			t.Fatalf("viewer stage: %v", e)
		}
	})
}

func TestEditorDoneConflicts(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		id, a, b := c.Pair(n, doc, "bob", auth.Editor)
		const path = "/messages/email/subject"
		a.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		want(t, a, "ok")
		a.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "Ann's"})
		want(t, a, "ok")
		// Bob changes the subject while Ann's editor is open: he was first.
		b.Edit(id, 0, `[{"op":"replace","path":"/messages/email/subject","value":"Bob's"}]`)
		want(t, b, "ack")
		want(t, a, "update")
		a.Send(map[string]any{"type": "editor.done", "campaign": id, "path": path})
		r := want(t, a, "refresh")
		if r["reason"] != "conflict" || sessiontest.JSONOf(r["values"]) != `{"/messages/email/subject":"Bob's"}` {
			t.Fatalf("refresh %v", r)
		}
		// Ann's staged text is kept for her to merge.
		a.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		if ok := want(t, a, "ok"); ok["staged"] != "Ann's" {
			t.Fatalf("staged lost: %v", ok)
		}
	})
}

// TestEditorSaveKeepsItOpen: a save from inside the full-screen editor
// (editor.done with keep_open) commits and saves the staged value, keeps
// the editor open in presence, and bases the next Done on the saved rev so
// a teammate's later change still wins.
func TestEditorSaveKeepsItOpen(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		id, a, b := c.Pair(n, doc, "bob", auth.Editor)
		const path = "/messages/email/subject"
		a.Send(map[string]any{"type": "editor.open", "campaign": id, "path": path})
		want(t, a, "ok")
		a.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "First take"})
		want(t, a, "ok")
		a.Send(map[string]any{"type": "editor.done", "campaign": id, "path": path, "keep_open": true, "ref": "s"})
		if ack := want(t, a, "ack"); ack["ref"] != "s" {
			t.Fatalf("save in editor: %v", ack)
		}
		expectSaved(t, b, "manual")
		if got := field(t, saved(t, c, id).Draft, "messages").(map[string]any)["email"].(map[string]any)["subject"]; got != "First take" {
			t.Fatalf("store holds subject %v after a save in the editor", got)
		}
		// Still open: presence keeps showing it.
		b.ExpectPresence(func(eds []any) bool {
			for _, e := range eds {
				if m := e.(map[string]any); m["user"] == "ann" {
					return m["editing"] == path
				}
			}
			return false
		})
		// Bob changes the subject after the save: his change wins over Ann's
		// next Done, which is based on the saved rev.
		b.Edit(id, 1, `[{"op":"replace","path":"/messages/email/subject","value":"Bob's"}]`)
		want(t, b, "ack")
		want(t, a, "update")
		a.Send(map[string]any{"type": "editor.stage", "campaign": id, "path": path, "value": "Second take"})
		want(t, a, "ok")
		a.Send(map[string]any{"type": "editor.done", "campaign": id, "path": path})
		if r := want(t, a, "refresh"); r["reason"] != "conflict" {
			t.Fatalf("done after a teammate's change: %v", r)
		}
	})
}

func TestRacingFlushers(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n1, f1 := node(c, autosave.Options{Interval: time.Hour}, nil)
		_, f2 := node(c, autosave.Options{Interval: time.Hour}, nil)
		id := c.Campaign("w1", doc)
		a := c.Connect(n1, "ann", "w1", auth.Editor)
		a.Join(id)
		ctx := context.Background()
		for round := 1; round <= 10; round++ {
			a.Edit(id, int64(round-1), `[{"op":"replace","path":"/name","value":"r`+string(rune('0'+round%10))+`"}]`)
			want(t, a, "ack")
			var wg sync.WaitGroup
			results := make([]autosave.Result, 4)
			for i := range results {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					f := []*autosave.Flusher{f1, f2}[i%2]
					var err error
					results[i], err = f.Flush(ctx, id, campaign.TriggerManual, true)
					if err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			wrote := 0
			for _, r := range results {
				if r.Wrote {
					wrote++
				}
				if r.Rev != int64(round) {
					t.Fatalf("round %d: a flusher answered rev %d", round, r.Rev)
				}
			}
			if wrote != 1 {
				t.Fatalf("round %d: %d flushers wrote", round, wrote)
			}
		}
		vs, _ := c.Store.Versions(ctx, "w1", id)
		if len(vs) != 11 {
			t.Fatalf("%d versions for 10 rounds + create", len(vs))
		}
		for i, v := range vs[:10] {
			if v.Rev != int64(10-i) || v.RevFrom != v.Rev {
				t.Fatalf("version %+v", v)
			}
		}
	})
}

// A flusher that died holding the lease blocks the campaign only until the
// lease expires; one that died after writing SQL but before recording it
// leaves nothing to write twice.
func TestFlusherKilledMidFlush(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		const lease = 600 * time.Millisecond
		n, f := node(c, autosave.Options{Interval: 100 * time.Millisecond, LeaseTTL: lease}, nil)
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		ctx := context.Background()
		// The dead node's lease.
		if ok, _ := n.Buf.Lease(ctx, id, "dead-node", lease); !ok {
			t.Fatal("lease")
		}
		start := time.Now()
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"after takeover"}]`)
		want(t, a, "ack")
		expectSaved(t, a, "timer")
		if took := time.Since(start); took < lease-100*time.Millisecond {
			t.Fatalf("flushed after %v while the dead node's lease (%v) held", took, lease)
		}
		if cp := saved(t, c, id); field(t, cp.Draft, "name") != "after takeover" || cp.Version != 2 {
			t.Fatalf("store %+v", cp)
		}

		// Killed after the SQL write: simulate by writing SQL as that flusher
		// would have, without telling Redis.
		a.Edit(id, 1, `[{"op":"replace","path":"/name","value":"half flushed"}]`)
		want(t, a, "ack")
		n.Buf.Lease(ctx, id, "dying-node", lease)
		d, err := n.Buf.Build(ctx, nil, func(ctx context.Context) (*campaign.Campaign, error) { return c.Store.Campaign(ctx, "w1", id) })
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := d.Doc.Marshal()
		if _, err := c.Store.SaveDraft(ctx, store.DraftSave{Workspace: "w1", ID: id, BaseVersion: d.Saved.Version, RevFrom: 2, Rev: d.Rev, Epoch: d.Epoch, Doc: raw, By: "ann", Trigger: campaign.TriggerTimer}); err != nil {
			t.Fatal(err)
		}
		// After expiry the next flusher finds nothing new: no double version.
		time.Sleep(lease + 300*time.Millisecond)
		res, err := f.Flush(ctx, id, campaign.TriggerManual, true)
		if err != nil || res.Wrote {
			t.Fatalf("second flush: %+v %v", res, err)
		}
		vs, _ := c.Store.Versions(ctx, "w1", id)
		if len(vs) != 3 || vs[0].Rev != 2 {
			t.Fatalf("versions %+v", vs)
		}
		// And the campaign is clean again.
		if _, ok, _ := n.Buf.OldestDirty(ctx); ok {
			t.Fatal("still dirty")
		}
	})
}

func TestStoreDownThenBack(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		flaky := &flakyStore{Store: c.Store}
		n, f := node(c, autosave.Options{Interval: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}, flaky)
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		flaky.fail.Store(true)
		for i := 1; i <= 20; i++ {
			a.Edit(id, int64(i-1), `[{"op":"add","path":"/k`+string(rune('a'+i))+`","value":1}]`)
			want(t, a, "ack") // edits go on: they are in Redis
		}
		a.Send(map[string]any{"type": "save", "campaign": id})
		if e := want(t, a, "error"); e["code"] != "unavailable" {
			t.Fatalf("save while the store is down: %v", e)
		}
		time.Sleep(700 * time.Millisecond)
		if f.Healthy() {
			t.Fatal("flusher claims health while every save fails")
		}
		if at, ok, _ := n.Buf.OldestDirty(context.Background()); !ok || time.Since(at) < 500*time.Millisecond {
			t.Fatalf("oldest unsaved edit: %v %v", at, ok)
		}
		if cp := saved(t, c, id); cp.Version != 1 {
			t.Fatalf("a failing store was written: %+v", cp)
		}
		flaky.fail.Store(false)
		expectSaved(t, a, "timer")
		cp := saved(t, c, id)
		var m map[string]any
		json.Unmarshal(cp.Draft, &m)
		if cp.Rev != 20 || len(m) != 22 {
			t.Fatalf("after recovery: rev %d, %d fields", cp.Rev, len(m))
		}
		for deadline := time.Now().Add(2 * time.Second); !f.Healthy(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("not healthy after recovery")
			}
		}
	})
}

func TestRestoreVersion(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, _ := node(c, autosave.Options{Interval: time.Hour}, nil)
		id, a, w := c.Pair(n, doc, "wes", auth.Viewer)
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"v2"},{"op":"add","path":"/extra","value":true}]`)
		want(t, a, "ack")
		want(t, w, "update")
		a.Send(map[string]any{"type": "save", "campaign": id})
		a.Expect("saved")
		r := &draft.Restorer{Drafts: n.Buf, Store: c.Store}
		rev, err := r.Restore(context.Background(), "w1", id, 1, "ann", "Ann")
		if err != nil || rev != 2 {
			t.Fatalf("restore: %d %v", rev, err)
		}
		// The restoring update may be superseded by the snapshot that follows
		// it in the queue (a snapshot drops its campaign's queued updates).
		ref := want(t, w, "update", "refresh")
		if ref["reason"] != "restored" || sessiontest.Num(ref["rev"]) != 2 {
			t.Fatalf("refresh %v", ref)
		}
		snap := want(t, w, "snapshot")
		if sessiontest.JSONOf(snap["doc"]) != sessiontest.JSONOf(mustJSON(doc)) || sessiontest.Num(snap["rev"]) != 2 {
			t.Fatalf("snapshot %v", snap)
		}
		want(t, a, "update", "refresh")
		want(t, a, "snapshot")
		// The restore is an edit like any other: saved by the next save, undoable.
		a.Send(map[string]any{"type": "save", "campaign": id, "ref": "after-restore"})
		for m := a.Expect("saved"); m["ref"] != "after-restore"; m = a.Expect("saved") {
		}
		if cp := saved(t, c, id); field(t, cp.Draft, "name") != "Spring" || field(t, cp.Draft, "extra") != nil {
			vs, _ := c.Store.Versions(context.Background(), "w1", id)
			t.Fatalf("restored draft %s (versions %+v)", cp.Draft, vs)
		}
		// Whichever save covers the restore (here a manual one) records it,
		// before its push: a history reloaded on the push reads it (bug: it
		// was marked afterwards, by the restore's own request, and a page
		// that reloaded on the push showed no restore).
		if vs, _ := c.Store.Versions(context.Background(), "w1", id); vs[0].RestoredFrom != 1 || vs[0].Trigger != campaign.TriggerRestore {
			t.Fatalf("the save of a restore is not recorded as one: %+v", vs[0])
		}
		if _, err := r.Restore(context.Background(), "w1", id, 2, "ann", "Ann"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Restore(context.Background(), "w2", id, 1, "eve", "Eve"); errcode.Of(err) != errcode.NotFound {
			t.Fatalf("other workspace restore: %v", err)
		}
	})
}

func mustJSON(s string) any {
	var v any
	json.Unmarshal([]byte(s), &v)
	return v
}

func TestShutdownFlushesEverything(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, f := node(c, autosave.Options{Interval: time.Hour}, nil)
		ids := []string{c.Campaign("w1", doc), c.Campaign("w1", doc), c.Campaign("w1", doc)}
		for _, id := range ids {
			a := c.Connect(n, "ann", "w1", auth.Editor)
			a.Join(id)
			a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"unsaved"}]`)
			want(t, a, "ack")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The order of a graceful shutdown: sessions go (their last leave
		// saves), then every dirty draft is flushed.
		n.Hub.Shutdown(ctx)
		if err := f.FlushAll(ctx, campaign.TriggerShutdown); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if cp := saved(t, c, id); field(t, cp.Draft, "name") != "unsaved" || cp.Rev != 1 {
				t.Fatalf("%s not saved: %+v", id, cp)
			}
		}
		if _, ok, _ := n.Buf.OldestDirty(ctx); ok {
			t.Fatal("dirty after shutdown")
		}
	})
}

// want returns the next message of type typ, skipping saved pushes (which
// every save broadcasts and which may come before or after a reply).
// want returns the next message, which must be of type typ; saved pushes,
// and messages of the optional types before it, are skipped.
func want(t *testing.T, cl *sessiontest.Client, typ string, optional ...string) map[string]any {
	t.Helper()
	if len(optional) > 0 {
		optional, typ = append([]string{typ}, optional[:len(optional)-1]...), optional[len(optional)-1]
	}
	for {
		m := cl.Next()
		if m["type"] == "saved" && typ != "saved" || slices.Contains(optional, m["type"].(string)) {
			continue
		}
		if m["type"] != typ {
			t.Fatalf("want %s, got %v", typ, m)
		}
		return m
	}
}

func sessiontestConfig() session.Config { return session.Config{RatePerSec: 1e6, RateBurst: 1e6} }

// editDirect applies one edit through the draft buffer, as a session on a
// node that then died would have.
func editDirect(t *testing.T, c *sessiontest.Cluster, n *sessiontest.Node, id, name string) {
	t.Helper()
	ctx := context.Background()
	cp := saved(t, c, id)
	head, err := n.Buf.Open(ctx, "w1", id, cp.Rev, string(cp.Status), func(ctx context.Context, epoch string) error {
		return c.Store.FenceEpoch(ctx, "w1", id, cp.Epoch, cp.Rev, epoch)
	})
	if err != nil {
		t.Fatal(err)
	}
	prefix, suffix := protocol.Update{Campaign: id, Ops: []byte(`[{"op":"replace","path":"/name","value":"` + name + `"}]`), By: protocol.Author{User: "ghost", Session: "gone"}, At: time.Now()}.Frame()
	res, err := n.Buf.Apply(ctx, draft.Batch{Campaign: id, Epoch: head.Epoch, Base: head.Rev, Session: "gone", User: "ghost",
		Prefix: prefix, Suffix: suffix, Keys: []string{"/name"}, Writes: []bool{true}})
	if err != nil || res.Outcome != draft.Accepted {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestShutdownTrigger(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, f := node(c, autosave.Options{Interval: time.Hour}, nil)
		id := c.Campaign("w1", doc)
		editDirect(t, c, n, id, "left behind")
		if err := f.FlushAll(context.Background(), campaign.TriggerShutdown); err != nil {
			t.Fatal(err)
		}
		vs, _ := c.Store.Versions(context.Background(), "w1", id)
		if len(vs) != 2 || vs[0].Trigger != campaign.TriggerShutdown || vs[0].By != "ghost" {
			t.Fatalf("versions %+v", vs)
		}
	})
}

// A saved draft that cannot be read is never flushed over: the flush fails,
// the stored draft stays as it was, and the edits stay in Redis.
func TestNeverClobberAnUnreadableDraft(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		n, f := node(c, autosave.Options{Interval: time.Hour}, nil)
		ctx := context.Background()
		id := c.Campaign("w1", doc)
		editDirect(t, c, n, id, "edit")
		// Someone broke the stored draft (a bad migration, a manual fix...),
		// at a rev ahead of Redis, which the next open turns into a new epoch.
		raw := json.RawMessage(`{not json`)
		cp := saved(t, c, id)
		if _, err := c.Store.SaveDraft(ctx, store.DraftSave{Workspace: "w1", ID: id, BaseVersion: cp.Version, RevFrom: 1, Rev: 5, Epoch: cp.Epoch, Doc: raw}); err != nil {
			t.Fatal(err)
		}
		editDirect(t, c, n, id, "more") // reopens at rev 5 (a new epoch), edit 6
		before := saved(t, c, id)
		if _, err := f.Flush(ctx, id, campaign.TriggerManual, true); err == nil {
			t.Fatal("flushed over an unreadable saved draft")
		}
		after := saved(t, c, id)
		if string(after.Draft) != string(raw) || after.Version != before.Version {
			t.Fatalf("stored draft changed: %s v%d", after.Draft, after.Version)
		}
		if _, ok, _ := n.Buf.OldestDirty(ctx); !ok {
			t.Fatal("the unsaved edit was dropped")
		}
	})
}

// pausingStore holds the next draft save until released, as a node frozen
// between building a flush and committing it would.
type pausingStore struct {
	store.Store
	armed   atomic.Bool
	held    chan struct{} // closed when a save is being held
	release chan struct{}
}

func (p *pausingStore) SaveDraft(ctx context.Context, d store.DraftSave) (int64, error) {
	if p.armed.CompareAndSwap(true, false) {
		close(p.held)
		<-p.release
	}
	return p.Store.SaveDraft(ctx, d)
}

// A flush built in one epoch and committed after Redis lost the buffer and a
// new epoch reused its revs must not commit: the new epoch's acked edits
// would never be saved (they are at revs the stale save already covers).
func TestStaleFlushAcrossNewEpoch(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		ps := &pausingStore{Store: c.Store, held: make(chan struct{}), release: make(chan struct{})}
		n, f := node(c, autosave.Options{Interval: time.Hour}, ps)
		ctx := context.Background()
		id := c.Campaign("w1", doc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		snap := a.Join(id)
		oldEpoch := snap["epoch"]
		for i := 0; i < 5; i++ {
			a.Edit(id, int64(i), `[{"op":"replace","path":"/name","value":"old epoch `+string(rune('a'+i))+`"}]`)
			want(t, a, "ack")
		}
		// The stale flush: built at rev 5 of the old epoch, held before SQL.
		ps.armed.Store(true)
		stale := make(chan error, 1)
		go func() { _, err := f.Flush(ctx, id, campaign.TriggerTimer, false); stale <- err }()
		<-ps.held
		// Redis loses the buffer (a crash without its AOF): the next edit
		// reopens it in a new epoch at the saved rev 0.
		rdb := n.Buf.Redis()
		keys := sessiontest.Keys(ctx, rdb, n.Buf.Options().Prefix+":{"+id+"}:*")
		if len(keys) == 0 || rdb.Del(ctx, keys...).Err() != nil {
			t.Fatalf("cannot drop the buffer: %v", keys)
		}
		a.Edit(id, 5, `[{"op":"replace","path":"/name","value":"lost?"}]`)
		if m := want(t, a, "error"); m["code"] != "unavailable" {
			t.Fatalf("edit on a lost buffer: %v", m)
		}
		want(t, a, "refresh")
		snap = want(t, a, "snapshot")
		if snap["epoch"] == oldEpoch || sessiontest.Num(snap["rev"]) != 0 {
			t.Fatalf("no new epoch at rev 0: %v", snap)
		}
		// Three acked edits in the new epoch, at revs 1..3.
		for i := 0; i < 3; i++ {
			a.Edit(id, int64(i), `[{"op":"add","path":"/new`+string(rune('0'+i))+`","value":true}]`)
			if m := want(t, a, "ack"); sessiontest.Num(m["rev"]) != int64(i+1) {
				t.Fatalf("ack %v", m)
			}
		}
		close(ps.release)
		// The held save is refused by the fence; the flusher then rebuilds
		// from the new epoch (or gives up), never commits the old content.
		if err := <-stale; err != nil && !errors.Is(err, store.ErrEpochFenced) {
			t.Fatalf("the stale flush ended with %v", err)
		}
		if _, err := f.Flush(ctx, id, campaign.TriggerManual, true); err != nil {
			t.Fatal(err)
		}
		cp := saved(t, c, id)
		var got map[string]any
		json.Unmarshal(cp.Draft, &got)
		if cp.Rev != 3 || got["new0"] != true || got["new1"] != true || got["new2"] != true {
			t.Fatalf("the new epoch's acked edits are not all saved: rev %d %s", cp.Rev, cp.Draft)
		}
	})
}

// countingStore records the order of draft saves and how many ran at once.
type countingStore struct {
	store.Store
	mu             sync.Mutex
	order          []string
	now, maxAtOnce int
}

func (s *countingStore) SaveDraft(ctx context.Context, d store.DraftSave) (int64, error) {
	s.mu.Lock()
	s.order = append(s.order, d.ID)
	s.now++
	s.maxAtOnce = max(s.maxAtOnce, s.now)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // a save that takes a database round trip
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	return s.Store.SaveDraft(ctx, d)
}

// FlushAll saves the campaigns it is given first (this node's rooms), then
// every other dirty draft, several at a time.
func TestFlushAllFirstAndConcurrent(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		for _, tc := range []struct {
			concurrency int
			atOnce      func(int) bool
		}{{1, func(n int) bool { return n == 1 }}, {4, func(n int) bool { return n > 1 && n <= 4 }}} {
			st := &countingStore{Store: c.Store}
			n, f := node(c, autosave.Options{Interval: time.Hour, Concurrency: tc.concurrency}, st)
			var ids []string
			for i := 0; i < 12; i++ {
				id := c.Campaign("w1", doc)
				editDirect(t, c, n, id, "unsaved")
				ids = append(ids, id)
			}
			mine := ids[8:] // the node's rooms, given first
			if err := f.FlushAll(context.Background(), campaign.TriggerShutdown, mine...); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if cp := saved(t, c, id); field(t, cp.Draft, "name") != "unsaved" {
					t.Fatalf("%s not saved", id)
				}
			}
			st.mu.Lock()
			if !tc.atOnce(st.maxAtOnce) || len(st.order) != len(ids) {
				t.Fatalf("concurrency %d: %d saves at once, %d saves", tc.concurrency, st.maxAtOnce, len(st.order))
			}
			if tc.concurrency == 1 && !slices.Equal(st.order[:len(mine)], mine) {
				t.Fatalf("this node's rooms were not saved first: %v, want %v first", st.order, mine)
			}
			st.mu.Unlock()
		}
	})
}

// The timer flushes a round with as few at once as finish it within half
// the interval: a round that fits one at a time never runs saves side by
// side (they would take CPU from live edits), and one that does not fit
// goes wider, up to Concurrency. The timer is started once every campaign
// of the round is due, so that they all fall in one round whatever the
// machine's speed; a flush's measured time persists across runs of it.
func TestTimerRoundWidth(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		for _, tc := range []struct {
			name      string
			interval  time.Duration
			campaigns int
			measure   bool // flush one campaign first, so that the width is sized
			atOnce    func(int) bool
		}{
			// 12 saves of 20 ms or more against half of 200 ms: 3 at once or
			// more, capped at 4. First: a flush the previous case left
			// unfinished would be measured too (a clean one, quick).
			{"too large for one", 200 * time.Millisecond, 12, true, func(n int) bool { return n > 1 && n <= 4 }},
			// Nothing measured yet: one at a time (the old fixed width ran 4).
			{"fits one at a time", 500 * time.Millisecond, 6, false, func(n int) bool { return n == 1 }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := &countingStore{Store: c.Store} // 20 ms a save
				var f *autosave.Flusher
				var dr *leaseCounting
				n := c.Node(session.Config{}, func(n *sessiontest.Node) {
					dr = &leaseCounting{Drafts: n.Buf}
					f = autosave.New(dr, st, autosave.Options{Interval: tc.interval, Concurrency: 4}, quiet)
					n.Hub.SetSaver(f)
				})
				run := func() (stop func()) {
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { defer close(done); f.Run(ctx) }()
					return func() { cancel(); <-done }
				}
				if tc.measure {
					ok := metrics.Flushes.WithLabelValues(string(campaign.TriggerTimer), "ok")
					before := testutil.ToFloat64(ok)
					stop := run()
					first := c.Campaign("w1", doc)
					editDirect(t, c, n, first, "measured")
					// Counted once the flush has ended (announce, trim, clean
					// come after the save): stopped before then, it measures
					// nothing.
					for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(ok) == before; {
						if time.Now().After(deadline) {
							t.Fatal("the measuring flush did not end")
						}
						time.Sleep(5 * time.Millisecond)
					}
					stop()
					dr.mu.Lock()
					dr.maxAtOnce = 0
					dr.mu.Unlock()
				}
				var ids []string
				for i := 0; i < tc.campaigns; i++ {
					id := c.Campaign("w1", doc)
					editDirect(t, c, n, id, "unsaved")
					ids = append(ids, id)
				}
				time.Sleep(tc.interval + 50*time.Millisecond) // every one due
				defer run()()
				for _, id := range ids {
					waitSaved(t, c, id, "unsaved")
				}
				dr.mu.Lock()
				defer dr.mu.Unlock()
				if !tc.atOnce(dr.maxAtOnce) {
					t.Fatalf("interval %v: %d timer flushes at once", tc.interval, dr.maxAtOnce)
				}
			})
		}
	})
}

// leaseCounting counts the flushes in progress: from the lease a flush
// takes first to the one it gives back last (the store may serialise the
// saves themselves).
type leaseCounting struct {
	autosave.Drafts
	mu             sync.Mutex
	now, maxAtOnce int
}

func (d *leaseCounting) Lease(ctx context.Context, campaign, token string, ttl time.Duration) (bool, error) {
	ok, err := d.Drafts.Lease(ctx, campaign, token, ttl)
	if ok {
		d.mu.Lock()
		d.now++
		d.maxAtOnce = max(d.maxAtOnce, d.now)
		d.mu.Unlock()
	}
	return ok, err
}

func (d *leaseCounting) Unlease(ctx context.Context, campaign, token string) error {
	d.mu.Lock()
	d.now--
	d.mu.Unlock()
	return d.Drafts.Unlease(ctx, campaign, token)
}

func waitSaved(t *testing.T, c *sessiontest.Cluster, id, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for field(t, saved(t, c, id).Draft, "name") != name {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not saved by the timer", id, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingDrafts counts the working drafts a flusher rebuilds from the log.
type countingDrafts struct {
	autosave.Drafts
	builds atomic.Int32
}

func (d *countingDrafts) Build(ctx context.Context, saved *campaign.Campaign, load func(context.Context) (*campaign.Campaign, error)) (*draft.Draft, error) {
	d.builds.Add(1)
	return d.Drafts.Build(ctx, saved, load)
}

// A timer flush takes the working draft this node's room holds, which is
// exactly what rebuilding it from the saved draft and the log gives: the
// same document, rev, epoch, authors, last author and restored version. The
// triggers that promise every acknowledged edit (here a manual save) still
// rebuild from the log, and a room that does not hold every entry above the
// saved rev (loaded after them) is not used.
func TestTimerFlushTakesTheRoomsDraft(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		var f *autosave.Flusher
		drafts := &countingDrafts{}
		n := c.Node(session.Config{}, func(n *sessiontest.Node) {
			drafts.Drafts = n.Buf
			f = autosave.New(drafts, c.Store, autosave.Options{Interval: time.Hour}, quiet)
			n.Hub.SetSaver(f)
			f.SetHolder(n.Hub)
		})
		ctx := context.Background()
		id, a, b := c.Pair(n, doc, "bob", auth.Editor)
		build := func() (*draft.Draft, []byte) {
			t.Helper()
			d, err := n.Buf.Build(ctx, nil, func(ctx context.Context) (*campaign.Campaign, error) { return c.Store.Campaign(ctx, "w1", id) })
			if err != nil {
				t.Fatal(err)
			}
			enc, err := d.Doc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return d, enc
		}
		held := func(n *sessiontest.Node, above int64) (draft.Held, bool) {
			t.Helper()
			head, _, err := n.Buf.Head(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return n.Hub.Held(hctx, id, above, head)
		}
		same := func(what string) {
			t.Helper()
			cp := saved(t, c, id)
			d, enc := build()
			h, ok := held(n, cp.Rev)
			if !ok {
				t.Fatalf("%s: the room holds every entry above saved rev %d and Held says no", what, cp.Rev)
			}
			if string(h.Doc) != string(enc) || h.Rev != d.Rev || h.Epoch != d.Epoch || !slices.Equal(h.Authors, d.Authors) || h.Last != d.Last || h.RestoredFrom != d.RestoredFrom {
				t.Fatalf("%s: held %+v (doc %s), rebuilt %+v (doc %s)", what, h, h.Doc, d, enc)
			}
			if _, ok := n.Hub.Held(ctx, id, cp.Rev, draft.Head{Rev: h.Rev, Epoch: "another"}); ok {
				t.Fatalf("%s: held answered for another epoch", what)
			}
		}
		a.Edit(id, 0, `[{"op":"replace","path":"/name","value":"Summer \u00e9t\u00e9"}]`)
		want(t, a, "ack")
		want(t, b, "update")
		b.Edit(id, 1, `[{"op":"add","path":"/big","value":1e21},{"op":"add","path":"/list","value":[1,"two",{"three":null}]}]`)
		want(t, b, "ack")
		want(t, a, "update")
		a.Edit(id, 2, `[{"op":"add","path":"/list/1","value":2.5}]`)
		want(t, a, "ack")
		want(t, b, "update")
		same("three edits by two users")

		res, err := f.Flush(ctx, id, campaign.TriggerTimer, false)
		if err != nil || !res.Wrote || res.Rev != 3 {
			t.Fatalf("timer flush: %+v %v", res, err)
		}
		if n := drafts.builds.Load(); n != 0 {
			t.Fatalf("the timer flush rebuilt the draft from the log %d times; the room held it", n)
		}
		cp := saved(t, c, id)
		if sessiontest.JSONOf(mustJSON(string(cp.Draft))) != sessiontest.JSONOf(mustJSON(`{"name":"Summer été","messages":{"email":{"subject":"Hi","body":"x"}},"big":1e21,"list":[1,2.5,"two",{"three":null}]}`)) {
			t.Fatalf("saved draft %s", cp.Draft)
		}
		vs, err := c.Store.Versions(ctx, "w1", id)
		if err != nil || vs[0].By != "ann" || !slices.Equal(vs[0].Authors, []string{"ann", "bob"}) || vs[0].RevFrom != 1 || vs[0].Rev != 3 {
			t.Fatalf("version %+v %v", vs[0], err)
		}
		// The room forgets what the store holds once it hears of the save.
		deadline := time.Now().Add(5 * time.Second)
		for _, ok := held(n, 0); ok; _, ok = held(n, 0) {
			if time.Now().After(deadline) {
				t.Fatal("the room still answers for entries the store holds")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, ok := held(n, 3); ok {
			t.Fatal("held answered with nothing above the saved rev")
		}

		// A restore is an entry like any other, and its version is kept.
		r := &draft.Restorer{Drafts: n.Buf, Store: c.Store}
		if _, err := r.Restore(ctx, "w1", id, 1, "ann", "Ann"); err != nil {
			t.Fatal(err)
		}
		want(t, a, "update", "refresh")
		want(t, a, "snapshot")
		b.Edit(id, 4, `[{"op":"replace","path":"/name","value":"after"}]`)
		want(t, b, "update", "refresh", "snapshot", "ack")
		deadline = time.Now().Add(5 * time.Second)
		for h, _ := held(n, 3); h.Rev < 5; h, _ = held(n, 3) {
			if time.Now().After(deadline) {
				t.Fatalf("the room did not reach rev 5: %+v", h)
			}
			time.Sleep(10 * time.Millisecond)
		}
		same("a restore and an edit")

		// A manual save promises every acknowledged edit: from the log.
		a.Edit(id, 5, `[{"op":"replace","path":"/name","value":"manual"}]`)
		want(t, a, "update", "refresh", "snapshot", "ack")
		if res, err := f.Flush(ctx, id, campaign.TriggerManual, true); err != nil || res.Rev != 6 {
			t.Fatalf("manual save: %+v %v", res, err)
		}
		if n := drafts.builds.Load(); n != 1 {
			t.Fatalf("a manual save rebuilt the draft %d times, want once", n)
		}

		// A room loaded over unsaved entries does not know who made them.
		b.Edit(id, 6, `[{"op":"replace","path":"/name","value":"unsaved"}]`)
		want(t, b, "update", "refresh", "snapshot", "ack")
		m := c.Node(session.Config{})
		late := c.Connect(m, "cid", "w1", auth.Viewer)
		late.Join(id)
		if _, ok := held(m, saved(t, c, id).Rev); ok {
			t.Fatal("a room loaded after unsaved entries answered for them")
		}
	})
}
