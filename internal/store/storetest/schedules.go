package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/store"
)

// Schedule rows follow the saved drafts, in the saves' transactions: a new
// spec waits to be planned, an unchanged one keeps its plan, a removed one
// or an archived campaign's goes, and campaigns without one have none.
func testSchedulesFollowSaves(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	const monthly = `{"frequency":"monthly","day":1,"at":"06:00","timezone":"Europe/Paris"}`
	const weekly = `{"frequency":"weekly","weekday":"monday","at":"06:00","timezone":"Europe/Paris"}`
	doc := func(sched string) json.RawMessage {
		if sched == "" {
			return json.RawMessage(`{"name":"n","canvas":{"activities":{},"transitions":[]}}`)
		}
		return json.RawMessage(`{"name":"n","canvas":{"schedule":` + sched + `,"activities":{},"transitions":[]}}`)
	}
	unplanned := func() map[string]string {
		t.Helper()
		list, err := s.UnplannedSchedules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range list {
			if r.Workspace == ws {
				out[r.Campaign] = r.Spec
			}
		}
		return out
	}
	due := func(at time.Time) map[string]bool {
		t.Helper()
		list, err := s.DueSchedules(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, r := range list {
			if r.Workspace == ws {
				out[r.Campaign] = true
			}
		}
		return out
	}
	c := newCampaign(t, s, ws, string(doc(monthly)))
	plain := newCampaign(t, s, ws, string(doc("")))
	if got := unplanned(); len(got) != 1 || got[c.ID] != monthly {
		t.Fatalf("after create: unplanned %v", got)
	}
	next := time.Date(2027, 1, 1, 5, 0, 0, 0, time.UTC)
	if err := s.PlanSchedule(ctx, c.ID, monthly, &next); err != nil {
		t.Fatal(err)
	}
	if got := unplanned(); len(got) != 0 {
		t.Fatalf("planned, still unplanned: %v", got)
	}
	if got := due(next); !got[c.ID] || got[plain.ID] || len(due(next.Add(-time.Minute))) != 0 {
		t.Fatalf("due at the planned time: %v", got)
	}
	save := func(base int64, rev int64, d json.RawMessage) {
		t.Helper()
		if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: base, RevFrom: rev, Rev: rev, Doc: d, By: "u1", Trigger: campaign.TriggerTimer}); err != nil {
			t.Fatal(err)
		}
	}
	// Another edit, same schedule: the plan stays.
	save(1, 1, json.RawMessage(`{"name":"renamed","canvas":{"schedule":`+monthly+`,"activities":{},"transitions":[]}}`))
	if len(unplanned()) != 0 || !due(next)[c.ID] {
		t.Fatal("a save with the same schedule lost its plan")
	}
	// A new schedule: unplanned, not due on the old plan.
	save(2, 2, doc(weekly))
	if got := unplanned(); got[c.ID] != weekly || due(next)[c.ID] {
		t.Fatalf("changed schedule: unplanned %v, due %v", got, due(next))
	}
	// A plan for the old spec, landing after the change, is ignored.
	if err := s.PlanSchedule(ctx, c.ID, monthly, &next); err != nil || unplanned()[c.ID] != weekly {
		t.Fatalf("a stale plan won: %v %v", unplanned(), err)
	}
	// The schedule removed from the draft: no row.
	save(3, 3, doc(""))
	if len(unplanned()) != 0 || len(due(next.AddDate(10, 0, 0))) != 0 {
		t.Fatal("a removed schedule is still kept")
	}
	// Archiving removes it too.
	save(4, 4, doc(monthly))
	if _, err := s.Transition(ctx, ws, c.ID, campaign.Archive); err != nil {
		t.Fatal(err)
	}
	if len(unplanned()) != 0 {
		t.Fatal("an archived campaign keeps its schedule")
	}
}
