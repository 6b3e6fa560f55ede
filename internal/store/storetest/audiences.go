package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
)

type lookup struct {
	ctx context.Context
	s   store.Store
}

func (l lookup) AudienceColumns(ws, id string) ([]string, error) {
	return l.s.AudienceColumns(l.ctx, ws, id)
}

type canvasRun struct {
	t  *testing.T
	s  store.Store
	ws string
	c  *audience.Canvas
}

func newCanvas(t *testing.T, s store.Store, ws, raw string) *canvasRun {
	t.Helper()
	c, err := audience.ParseCanvas(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &canvasRun{t: t, s: s, ws: ws, c: c}
}

func (r *canvasRun) plan(node string) (audience.Population, error) {
	p := &audience.Planner{Canvas: r.c, Workspace: r.ws, Dialect: r.s.Dialect(), Lookup: lookup{context.Background(), r.s}}
	return p.Plan(node)
}

// ids returns the sorted member ids of node's population.
func (r *canvasRun) ids(node string) string {
	r.t.Helper()
	p, err := r.plan(node)
	if err != nil {
		r.t.Fatal(err)
	}
	rows, err := r.s.SamplePopulation(context.Background(), p, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	n, err := r.s.CountPopulation(context.Background(), p)
	if err != nil || int(n) != len(rows) {
		r.t.Fatalf("count %d vs %d rows, %v", n, len(rows), err)
	}
	var ids []string
	for _, row := range rows {
		ids = append(ids, row["id"].(string))
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func (r *canvasRun) save(activity string) (store.AudienceSaved, error) {
	cfg, err := r.c.SaveConfigOf(activity)
	if err != nil {
		return store.AudienceSaved{}, err
	}
	p, err := r.plan(activity)
	if err != nil {
		return store.AudienceSaved{}, err
	}
	return r.s.SaveAudience(context.Background(), store.AudienceSave{Workspace: r.ws, Mode: cfg.Mode, Label: cfg.Label,
		AudienceID: cfg.Audience, UpdateMode: cfg.UpdateMode, SourceCampaign: "c_test", Activity: activity, By: "ann", Population: p, NewID: ID("a_")})
}

const people = `{"id":"p1","country":"FR","email":"a@x.fr","plan":"pro","age":30,"subscribed":true}
{"id":"p2","country":"FR","email":"a@x.fr","plan":"free","age":40,"subscribed":true}
{"id":"p3","country":"DE","email":"c@x.de","plan":"pro","age":50,"subscribed":false}
{"id":"p4","country":"DE","email":"d@x.de","plan":"free","age":60,"subscribed":true}
{"id":"p5","country":"ES","email":"e@x.es","plan":"pro","age":70,"subscribed":true}
`

func testActivities(t *testing.T, s store.Store) {
	ws := ID("w_")
	if _, err := importNDJSON(t, s, ws, people); err != nil {
		t.Fatal(err)
	}
	r := newCanvas(t, s, ws, `{
	  "activities": {
	    "fr":   {"type":"build_audience","config":{"rule":{"field":"country","op":"eq","value":"FR"},"columns":["email","plan"]}},
	    "pro":  {"type":"build_audience","config":{"rule":{"field":"plan","op":"eq","value":"pro"},"columns":["plan","age"]}},
	    "subs": {"type":"build_audience","config":{"rule":{"field":"subscribed","op":"eq","value":true}}},
	    "u":    {"type":"combine","config":{"operator":"union","primary":"fr"}},
	    "i":    {"type":"combine","config":{"operator":"intersection","primary":"pro"}},
	    "x":    {"type":"combine","config":{"operator":"exclusion","primary":"subs"}},
	    "dd":   {"type":"deduplication","config":{"keys":["email"],"keep":"first"}},
	    "dl":   {"type":"deduplication","config":{"keys":["email"],"keep":"last"}},
	    "sp":   {"type":"split","config":{"subsets":[{"name":"old","rule":{"field":"age","op":"gte","value":50}},{"name":"two","limit":2}],"complement":true}}
	  },
	  "transitions": [
	    {"from":"fr","to":"u"},{"from":"pro","to":"u"},
	    {"from":"fr","to":"i"},{"from":"pro","to":"i"},
	    {"from":"subs","to":"x"},{"from":"fr","to":"x"},
	    {"from":"fr","to":"dd"},{"from":"fr","to":"dl"},
	    {"from":"subs","to":"sp"}
	  ]}`)
	cases := map[string]string{
		"fr":            "p1,p2",
		"pro":           "p1,p3,p5",
		"u":             "p1,p2,p3,p5",
		"i":             "p1",
		"x":             "p4,p5",
		"dd":            "p1",
		"dl":            "p2",
		"sp#old":        "p4,p5",
		"sp#two":        "p1,p2",
		"sp#complement": "",
	}
	for node, want := range cases {
		if got := r.ids(node); got != want {
			t.Errorf("%s: got %q, want %q", node, got, want)
		}
	}
	// Columns travel: union carries the primary's then the others'.
	p, _ := r.plan("u")
	if strings.Join(p.Columns, ",") != "email,plan,age" {
		t.Errorf("union columns %v", p.Columns)
	}
	rows, _ := s.SamplePopulation(context.Background(), p, 10)
	if rows[0]["id"] != "p1" || rows[0]["email"] != "a@x.fr" || rows[2]["email"] != nil || fmt.Sprint(rows[2]["age"]) != "50" {
		t.Errorf("union rows %v", rows)
	}
	// Bad canvases are refused with the activity named.
	for node, want := range map[string]string{
		"nope": "no activity", "sp": "name one", "sp#zzz": "no output", "fr#x": "one output",
	} {
		if _, err := r.plan(node); errcode.Of(err) != errcode.Invalid || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", node, want, err)
		}
	}
	loop := newCanvas(t, s, ws, `{"activities":{"a":{"type":"deduplication","config":{"keys":["id"]}},"b":{"type":"deduplication","config":{"keys":["id"]}}},
		"transitions":[{"from":"a","to":"b"},{"from":"b","to":"a"}]}`)
	if _, err := loop.plan("a"); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Errorf("loop: %v", err)
	}
}

func testSaveAudience(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	importNDJSON(t, s, ws, people)
	canvas := func(mode, updateMode string, outbound bool, extra string) *canvasRun {
		return newCanvas(t, s, ws, fmt.Sprintf(`{"activities":{
		  "b":{"type":"build_audience","config":{"rule":{"field":"subscribed","op":"eq","value":true},"columns":["email"]}},
		  "fr":{"type":"build_audience","config":{"rule":{"field":"country","op":"eq","value":"FR"},"columns":["plan"]}},
		  "save":{"type":"save_audience","config":{"mode":%q,%s"update_mode":%q,"outbound":%v}},
		  "next":{"type":"deduplication","config":{"keys":["id"]}}},
		  "transitions":[{"from":"b","to":"save"},{"from":"save","to":"next"}]}`, mode, extra, updateMode, outbound))
	}
	c := canvas("create_or_update", "replace", false, `"label":"Subscribers",`)
	res, err := c.save("save")
	if err != nil || !res.Created || res.Count != 4 || res.Added != 4 || res.Removed != 0 || res.Label != "Subscribers" {
		t.Fatalf("create: %+v %v", res, err)
	}
	id := res.Audience
	// outbound off: the branch ends at the save.
	if err := c.c.CheckFlow("next"); err == nil {
		t.Fatal("population flowed past a save without outbound")
	}
	if err := canvas("create_or_update", "replace", true, `"label":"Subscribers",`).c.CheckFlow("next"); err != nil {
		t.Fatalf("outbound on: %v", err)
	}
	// The same label updates the same audience.
	res, err = c.save("save")
	if err != nil || res.Created || res.Audience != id || res.Added != 0 || res.Removed != 0 || res.Count != 4 {
		t.Fatalf("update by label: %+v %v", res, err)
	}
	list, _ := s.Audiences(ctx, ws, "subscr")
	if len(list) != 1 || list[0].ID != id || list[0].Count != 4 || list[0].Kind != "list" || list[0].Dimension != "profile" {
		t.Fatalf("list: %+v", list)
	}
	// Each save is in its size history, with where it came from.
	if l := list[0]; len(l.Sizes) != 2 || l.Sizes[0].Count != 4 || l.Campaign != "c_test" || l.Activity != "save" || l.By != "ann" || l.Sizes[0].At.After(l.Sizes[1].At) {
		t.Fatalf("size history: %+v", l)
	}
	d, err := s.Audience(ctx, ws, id, 1, 2)
	if err != nil || strings.Join(d.Columns, ",") != "id,email" || len(d.Rows) != 2 || d.Rows[0]["id"] != "p2" || d.Rows[0]["email"] != "a@x.fr" || d.Count != 4 {
		t.Fatalf("detail: %+v %v", d, err)
	}
	// Append, by id, from another population: FR people, with plan.
	app := newCanvas(t, s, ws, fmt.Sprintf(`{"activities":{
	  "fr":{"type":"build_audience","config":{"rule":{"field":"country","op":"in","value":["FR","DE"]},"columns":["plan"]}},
	  "save":{"type":"save_audience","config":{"mode":"update","audience":%q,"update_mode":"append"}}},
	  "transitions":[{"from":"fr","to":"save"}]}`, id))
	res, err = app.save("save")
	// p1, p2, p4 were in; p3 is new; present members take the incoming values.
	if err != nil || res.Added != 1 || res.Removed != 0 || res.Count != 5 {
		t.Fatalf("append: %+v %v", res, err)
	}
	d, _ = s.Audience(ctx, ws, id, 0, 10)
	// A member present on both sides keeps the columns the incoming
	// population does not carry (p1's email), and takes those it does.
	if strings.Join(d.Columns, ",") != "id,email,plan" || d.Rows[0]["plan"] != "pro" || d.Rows[0]["email"] != "a@x.fr" ||
		d.Rows[2]["id"] != "p3" || d.Rows[2]["email"] != nil || d.Rows[2]["plan"] != "pro" || d.Rows[4]["email"] != "e@x.es" {
		t.Fatalf("after append: %+v", d)
	}
	// Appending a population without columns changes no member's data.
	bare := newCanvas(t, s, ws, fmt.Sprintf(`{"activities":{
	  "all":{"type":"build_audience","config":{"rule":{"field":"age","op":"gt","value":0}}},
	  "save":{"type":"save_audience","config":{"mode":"update","audience":%q,"update_mode":"append"}}},
	  "transitions":[{"from":"all","to":"save"}]}`, id))
	if res, err = bare.save("save"); err != nil || res.Added != 0 || res.Count != 5 {
		t.Fatalf("append without columns: %+v %v", res, err)
	}
	after, _ := s.Audience(ctx, ws, id, 0, 10)
	for i, row := range after.Rows {
		for _, col := range []string{"email", "plan"} {
			if row[col] != d.Rows[i][col] {
				t.Errorf("append without columns changed %s of %s: %v, was %v", col, row["id"], row[col], d.Rows[i][col])
			}
		}
	}
	// Replace overwrites members and columns.
	rep := newCanvas(t, s, ws, fmt.Sprintf(`{"activities":{
	  "de":{"type":"build_audience","config":{"rule":{"field":"country","op":"eq","value":"DE"},"columns":["age"]}},
	  "save":{"type":"save_audience","config":{"mode":"update","audience":%q,"update_mode":"replace"}}},
	  "transitions":[{"from":"de","to":"save"}]}`, id))
	res, err = rep.save("save")
	if err != nil || res.Count != 2 || res.Added != 0 || res.Removed != 3 {
		t.Fatalf("replace: %+v %v", res, err)
	}
	d, _ = s.Audience(ctx, ws, id, 0, 10)
	if strings.Join(d.Columns, ",") != "id,age" || len(d.Rows) != 2 {
		t.Fatalf("after replace: %+v", d)
	}
	// update of a missing audience; another workspace sees nothing.
	missing := canvas("update", "replace", false, `"audience":"a_missing",`)
	if _, err := missing.save("save"); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("missing audience: %v", err)
	}
	other := ID("w_")
	if _, err := s.Audience(ctx, other, id, 0, 10); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("other workspace detail: %v", err)
	}
	if l, _ := s.Audiences(ctx, other, ""); len(l) != 0 {
		t.Fatalf("other workspace list: %v", l)
	}
	fromAud := newCanvas(t, s, other, fmt.Sprintf(`{"activities":{"b":{"type":"build_audience","config":{"audience":%q}}},"transitions":[]}`, id))
	if _, err := fromAud.plan("b"); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("other workspace builds from it: %v", err)
	}
	// The same label in another workspace is another audience.
	c2 := newCanvas(t, s, other, `{"activities":{"b":{"type":"build_audience","config":{"rule":{"field":"x","op":"empty"}}},
	  "save":{"type":"save_audience","config":{"mode":"create_or_update","label":"Subscribers","update_mode":"replace"}}},"transitions":[{"from":"b","to":"save"}]}`)
	if res, err := c2.save("save"); err != nil || !res.Created || res.Audience == id {
		t.Fatalf("label in another workspace: %+v %v", res, err)
	}
}

// The seed's example: a monthly run whose Save audience in replace mode
// drops the profiles that unsubscribed and adds the new subscribers.
func testMonthlyReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	importNDJSON(t, s, ws, people)
	run := newCanvas(t, s, ws, `{"activities":{
	  "q":{"type":"build_audience","config":{"rule":{"field":"subscribed","op":"eq","value":true},"columns":["email"]}},
	  "save":{"type":"save_audience","config":{"mode":"create_or_update","label":"Subscribers (monthly)","update_mode":"replace","outbound":false}}},
	  "transitions":[{"from":"q","to":"save"}]}`)
	first, err := run.save("save")
	if err != nil || first.Count != 4 {
		t.Fatalf("first run: %+v %v", first, err)
	}
	// A month later: p1 unsubscribed, p3 subscribed, p6 is new.
	importNDJSON(t, s, ws, `{"id":"p1","country":"FR","email":"a@x.fr","subscribed":false}
{"id":"p3","country":"DE","email":"c@x.de","subscribed":true}
{"id":"p6","country":"IT","email":"f@x.it","subscribed":true}
`)
	second, err := run.save("save")
	if err != nil || second.Created || second.Audience != first.Audience || second.Count != 5 || second.Added != 2 || second.Removed != 1 {
		t.Fatalf("second run: %+v %v", second, err)
	}
	d, _ := s.Audience(ctx, ws, first.Audience, 0, 10)
	var ids []string
	for _, r := range d.Rows {
		ids = append(ids, r["id"].(string))
	}
	if strings.Join(ids, ",") != "p2,p3,p4,p5,p6" {
		t.Fatalf("members %v", ids)
	}
}

// testActivityResults: a campaign keeps each activity's last result of each
// kind, the newest replacing the older, and only for its own workspace.
func testActivityResults(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	for _, r := range []struct{ activity, kind, msg string }{
		{"b", "run", `{"type":"activity.result","activity":"b","count":1}`},
		{"s", "save", `{"type":"audience.saved","activity":"s","count":5}`},
		{"b", "run", `{"type":"activity.result","activity":"b","count":2}`},
	} {
		if err := s.SaveActivityResult(ctx, ws, c.ID, r.activity, r.kind, json.RawMessage(r.msg)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ActivityResults(ctx, ws, c.ID)
	if err != nil || len(got) != 2 {
		t.Fatalf("results %s %v", got, err)
	}
	joined := string(got[0]) + string(got[1])
	if !strings.Contains(joined, `"activity":"b","count":2`) || strings.Contains(joined, `"count":1`) || !strings.Contains(joined, `"audience.saved"`) {
		t.Fatalf("results not replaced by the newest: %s", got)
	}
	_, err = s.ActivityResults(ctx, ID("w_"), c.ID)
	wantCode(t, err, errcode.NotFound)
	wantCode(t, s.SaveActivityResult(ctx, ID("w_"), c.ID, "b", "run", json.RawMessage(`{}`)), errcode.NotFound)
}
