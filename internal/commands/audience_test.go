package commands_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/commands"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"
	"github.com/collab-dev/collab/internal/store/storetest"
)

const profiles = `{"id":"p1","country":"FR","email":"a@x.fr","subscribed":true}
{"id":"p2","country":"FR","email":"b@x.fr","subscribed":false}
{"id":"p3","country":"DE","email":"c@x.de","subscribed":true}
`

const canvasDoc = `{"name":"Orchestrated","canvas":{
  "activities":{
    "q":{"type":"build_audience","config":{"rule":{"field":"subscribed","op":"eq","value":true},"columns":["email","country"]}},
    "save":{"type":"save_audience","config":{"mode":"create_or_update","label":"Subscribers","update_mode":"replace","outbound":true}}},
  "transitions":[{"from":"q","to":"save"}]}}`

func want(t *testing.T, cl *sessiontest.Client, typ string) map[string]any {
	t.Helper()
	for {
		m := cl.Next()
		if m["type"] == typ {
			return m
		}
		if m["type"] == "error" {
			t.Fatalf("want %s, got %v", typ, m)
		}
	}
}

func TestAudienceCommands(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		n := c.Node(session.Config{}, func(n *sessiontest.Node) {
			(&commands.Audiences{Runner: runner.New(c.Store, log), Store: c.Store, Log: log}).Register(n.Hub)
		})
		d, _ := audience.NewDecoder(strings.NewReader(profiles), "ndjson")
		ws := storetest.ID("w_") // audiences are found by label within a workspace
		if _, err := c.Store.ImportProfiles(context.Background(), ws, d.Next); err != nil {
			t.Fatal(err)
		}
		id := c.Campaign(ws, canvasDoc)
		a, v := c.Connect(n, "ann", ws, auth.Editor), c.Connect(n, "vic", ws, auth.Viewer)
		a.Join(id)
		v.Join(id)
		// A run reads the working draft: change the rule without saving.
		a.Edit(id, 0, `[{"op":"replace","path":"/canvas/activities/q/config/rule/value","value":true}]`)
		want(t, a, "ack")
		// A viewer may run; every teammate sees the counts.
		v.Send(map[string]any{"type": "activity.run", "campaign": id, "activity": "save", "ref": "r"})
		res := want(t, v, "activity.result")
		if res["ref"] != "r" || sessiontest.Num(res["count"]) != 2 || sessiontest.JSONOf(res["columns"]) != `["id","email","country"]` ||
			sessiontest.JSONOf(res["transitions"]) != `[{"count":2,"from":"q","to":"save"}]` {
			t.Fatalf("result %v", res)
		}
		if sample := res["sample"].([]any); len(sample) != 2 || sample[0].(map[string]any)["email"] != "a@x.fr" {
			t.Fatalf("sample %v", res["sample"])
		}
		if pushed := want(t, a, "activity.result"); sessiontest.Num(pushed["count"]) != 2 || pushed["unsaved"] != true || pushed["by_name"] != "Vic" {
			t.Fatalf("pushed %v", pushed) // the run read an edit not saved yet, and says so
		}
		// A viewer may not save; an editor may, and everyone sees it.
		v.Send(map[string]any{"type": "audience.save", "campaign": id, "activity": "save"})
		if e := want(t, v, "error"); e["code"] != "forbidden" {
			t.Fatalf("viewer save %v", e)
		}
		a.Send(map[string]any{"type": "audience.save", "campaign": id, "activity": "save", "ref": 1})
		saved := want(t, a, "audience.saved")
		if saved["created"] != true || sessiontest.Num(saved["count"]) != 2 || sessiontest.Num(saved["added"]) != 2 || saved["label"] != "Subscribers" ||
			sessiontest.JSONOf(saved["transitions"]) != `[{"count":2,"from":"q","to":"save"}]` {
			t.Fatalf("saved %v", saved)
		}
		want(t, v, "audience.saved")
		// A teammate who opens the campaign later (another node, where the
		// room is new) sees the last counts in the snapshot.
		n2 := c.Node(session.Config{})
		late := c.Connect(n2, "lou", ws, auth.Viewer).Join(id)
		results, _ := late["results"].([]any)
		if len(results) != 2 || results[0].(map[string]any)["type"] != "activity.result" || sessiontest.Num(results[0].(map[string]any)["count"]) != 2 ||
			results[1].(map[string]any)["type"] != "audience.saved" || results[1].(map[string]any)["audience"] != saved["audience"] {
			t.Fatalf("late joiner's results %v", late["results"])
		}
		// Listed and browsable, with the columns of its incoming population.
		v.Send(map[string]any{"type": "audience.list", "query": "subs"})
		list := want(t, v, "audiences")["audiences"].([]any)
		if l := list[0].(map[string]any); len(list) != 1 || l["id"] != saved["audience"] || l["campaign"] != id || l["activity"] != "save" || l["by"] != "ann" {
			t.Fatalf("list %v", list)
		}
		v.Send(map[string]any{"type": "audience.get", "audience": saved["audience"], "offset": 0, "limit": 1})
		got := want(t, v, "audience")
		if sessiontest.JSONOf(got["columns"]) != `["id","email","country"]` || len(got["rows"].([]any)) != 1 || sessiontest.Num(got["count"]) != 2 {
			t.Fatalf("get %v", got)
		}
		// Bad requests.
		for _, tc := range []struct {
			msg  map[string]any
			code string
		}{
			{map[string]any{"type": "activity.run", "campaign": id, "activity": "nope"}, "bad_request"},
			{map[string]any{"type": "audience.save", "campaign": id, "activity": "q"}, "bad_request"},
			{map[string]any{"type": "audience.get", "audience": "a_nope"}, "not_found"},
			{map[string]any{"type": "audience.get", "audience": saved["audience"], "limit": 5000}, "bad_request"},
		} {
			a.Send(tc.msg)
			if e := want(t, a, "error"); e["code"] != tc.code {
				t.Fatalf("%v: %v", tc.msg, e)
			}
		}
		// A rule the builder refuses names the offending node.
		a.Edit(id, 1, `[{"op":"replace","path":"/canvas/activities/q/config/rule","value":{"all":[{"field":"x","op":"bogus","value":1}]}}]`)
		want(t, a, "ack")
		a.Send(map[string]any{"type": "activity.run", "campaign": id, "activity": "q"})
		if e := want(t, a, "error"); e["code"] != "bad_request" || !strings.Contains(e["message"].(string), "rule.all[0].op") {
			t.Fatalf("bad rule: %v", e)
		}
		// Another workspace sees none of it.
		o := c.Connect(n, "eve", storetest.ID("w_"), auth.Admin)
		o.Send(map[string]any{"type": "audience.get", "audience": saved["audience"]})
		if e := want(t, o, "error"); e["code"] != "not_found" {
			t.Fatalf("other workspace: %v", e)
		}
	})
}

// slowRunner reports a first step, then runs until its context ends.
type slowRunner struct{ commands.Runner }

func (slowRunner) Run(ctx context.Context, _ string, _ *audience.Canvas, activity string, progress runner.Progress) (runner.Result, error) {
	progress(1, 3)
	<-ctx.Done()
	return runner.Result{}, ctx.Err()
}

// TestRunProgressAndCancel: a long run reports its steps, a second run of
// the same activity waits its turn, and activity.cancel stops it (the run
// answers activity.cancelled; nothing is kept).
func TestRunProgressAndCancel(t *testing.T) {
	sessiontest.ForEachRedis(t, draft.Options{}, func(t *testing.T, c *sessiontest.Cluster) {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		n := c.Node(session.Config{}, func(n *sessiontest.Node) {
			(&commands.Audiences{Runner: slowRunner{}, Store: c.Store, Log: log}).Register(n.Hub)
		})
		id := c.Campaign("w1", canvasDoc)
		a := c.Connect(n, "ann", "w1", auth.Editor)
		a.Join(id)
		a.Send(map[string]any{"type": "activity.run", "campaign": id, "activity": "q", "ref": "run"})
		if p := want(t, a, "activity.progress"); p["activity"] != "q" || sessiontest.Num(p["step"]) != 1 || sessiontest.Num(p["steps"]) != 3 || p["ref"] != nil {
			t.Fatalf("progress %v", p)
		}
		a.Send(map[string]any{"type": "activity.run", "campaign": id, "activity": "q", "ref": "again"})
		if e := a.Next(); e["type"] != "error" || e["code"] != "conflict" || e["ref"] != "again" {
			t.Fatalf("a second run of a running activity: %v", e)
		}
		a.Send(map[string]any{"type": "activity.cancel", "campaign": id, "activity": "q", "ref": "stop"})
		got := map[string]bool{}
		for len(got) < 2 {
			m := a.Next()
			switch {
			case m["type"] == "ok" && m["ref"] == "stop":
				got["ok"] = true
			case m["type"] == "activity.cancelled" && m["ref"] == "run":
				got["cancelled"] = true
			case m["type"] == "activity.result":
				t.Fatalf("a cancelled run answered a result: %v", m)
			}
		}
		// Nothing was kept: a new session's snapshot has no result.
		if snap := c.Connect(n, "bob", "w1", auth.Viewer).Join(id); snap["results"] != nil {
			t.Fatalf("results after a cancelled run: %v", snap["results"])
		}
	})
}
