package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/webhook"
)

func newEndpoint(t *testing.T, s store.Store, ws string) webhook.Endpoint {
	t.Helper()
	e := webhook.Endpoint{ID: ID("wh_"), Workspace: ws, URL: "https://hooks.example/" + ws, Secret: "whsec_test", CreatedAt: time.Now(), CreatedBy: "admin"}
	if err := s.CreateEndpoint(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

func events(t *testing.T, s store.Store, ws string) []webhook.Event {
	t.Helper()
	list, err := s.Events(context.Background(), ws, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// An event exists exactly when the change it reports committed, and it
// reaches each endpoint of its workspace (and no other) once per claim, a
// campaign's events one at a time, in order.
func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws, other := ID("w_"), ID("w_")
	ep := newEndpoint(t, s, ws)
	foreign := newEndpoint(t, s, other)
	c := newCampaign(t, s, ws, `{"name":"a"}`)

	save := func(base, rev int64, by string) error {
		_, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: base, RevFrom: rev, Rev: rev,
			Doc: json.RawMessage(`{"name":"v"}`), By: by, Authors: []string{by}, Trigger: campaign.TriggerTimer})
		return err
	}
	if err := save(1, 1, "ann"); err != nil {
		t.Fatal(err)
	}
	// A refused save (stale version) is rolled back: no event.
	if err := save(1, 2, "bob"); errcode.Of(err) != errcode.Conflict {
		t.Fatalf("stale save: %v", err)
	}
	if _, err := s.Transition(ctx, ws, c.ID, campaign.Launch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, ws, c.ID, "ann"); err != nil {
		t.Fatal(err)
	}
	// A refused publish (a stopped campaign cannot publish): no event.
	if _, err := s.Transition(ctx, ws, c.ID, campaign.Stop); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, ws, c.ID, "ann"); err == nil {
		t.Fatal("a stopped campaign published")
	}
	evs := events(t, s, ws)
	var types []webhook.Type
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []webhook.Type{webhook.CampaignSaved, webhook.CampaignStatusChanged, webhook.CampaignPublished, webhook.CampaignStatusChanged}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] || evs[i].Campaign != c.ID {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	var saved webhook.Saved
	if err := json.Unmarshal(evs[0].Payload, &saved); err != nil || saved.Version != 2 || saved.RevTo != 1 || len(saved.Authors) != 1 || saved.Authors[0] != "ann" {
		t.Fatalf("campaign.saved payload %s", evs[0].Payload)
	}
	var st webhook.StatusChanged
	if err := json.Unmarshal(evs[3].Payload, &st); err != nil || st.From != "active" || st.To != "stopped" {
		t.Fatalf("status_changed payload %s", evs[3].Payload)
	}
	if len(events(t, s, other)) != 0 {
		t.Fatal("another workspace got events")
	}

	// Claims: only the head of the campaign's chain, only this workspace's
	// endpoint, and a claimed delivery is leased.
	now := time.Now()
	claim := func(at time.Time) []webhook.Delivery {
		t.Helper()
		all, err := s.ClaimDeliveries(ctx, at, time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []webhook.Delivery // a shared database may hold others' deliveries
		for _, d := range all {
			if d.Endpoint == foreign.ID {
				t.Fatalf("claimed a delivery to another workspace's endpoint: %+v", d)
			}
			if d.Endpoint == ep.ID {
				got = append(got, d)
			}
		}
		return got
	}
	got := claim(now)
	if len(got) != 1 || got[0].ID != evs[0].ID || got[0].Endpoint != ep.ID || got[0].URL != ep.URL || got[0].Secret != ep.Secret || got[0].Attempts != 0 {
		t.Fatalf("first claim: %+v", got)
	}
	if again := claim(now); len(again) != 0 {
		t.Fatalf("a leased delivery, or one behind it, was claimed again: %+v", again)
	}
	// A failed attempt keeps the chain waiting for its retry.
	if err := s.RecordAttempt(ctx, webhook.Attempt{Event: evs[0].ID, Endpoint: ep.ID, At: now, Status: 503, Error: "down",
		State: webhook.Pending, NextAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if again := claim(now.Add(2 * time.Minute)); len(again) != 0 {
		t.Fatalf("claimed past a head waiting for its retry: %+v", again)
	}
	retry := claim(now.Add(2 * time.Hour))
	if len(retry) != 1 || retry[0].ID != evs[0].ID || retry[0].Attempts != 1 {
		t.Fatalf("retry claim: %+v", retry)
	}
	// Delivered, the next event of the chain is due, and so on in order.
	for i := range evs {
		if i > 0 {
			next := claim(now.Add(2 * time.Hour))
			if len(next) != 1 || next[0].ID != evs[i].ID {
				t.Fatalf("claim %d: %+v, want event %d", i, next, evs[i].ID)
			}
		}
		if err := s.RecordAttempt(ctx, webhook.Attempt{Event: evs[i].ID, Endpoint: ep.ID, At: now, Status: 200, State: webhook.Delivered}); err != nil {
			t.Fatal(err)
		}
	}
	if rest := claim(now.Add(3 * time.Hour)); len(rest) != 0 {
		t.Fatalf("delivered events claimed again: %+v", rest)
	}
	stats, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stats // shared by every test of the store: only its errors are checked

	log, err := s.Deliveries(ctx, ws, ep.ID, 10)
	if err != nil || len(log) != len(evs) || log[0].Event != evs[len(evs)-1].Key() || log[len(log)-1].State != webhook.Delivered || len(log[len(log)-1].Tries) != 2 {
		t.Fatalf("delivery log: %+v %v", log, err)
	}
	if _, err := s.Deliveries(ctx, other, ep.ID, 10); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("another workspace's delivery log: %v", err)
	}

	// A replay makes them due again, in order, with the same events.
	n, err := s.Replay(ctx, ws, evs[0].ID, evs[1].ID, "")
	if err != nil || n != 2 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if again := claim(time.Now().Add(time.Second)); len(again) != 1 || again[0].ID != evs[0].ID || again[0].Attempts != 0 {
		t.Fatalf("after replay: %+v", again)
	}
	if n, err := s.Replay(ctx, other, evs[0].ID, evs[1].ID, ""); err != nil || n != 0 {
		t.Fatalf("another workspace replayed %d deliveries (%v)", n, err)
	}

	if err := s.DeleteEndpoint(ctx, other, ep.ID); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("deleted another workspace's endpoint: %v", err)
	}
	if err := s.DeleteEndpoint(ctx, ws, ep.ID); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Endpoints(ctx, ws); err != nil || len(list) != 0 {
		t.Fatalf("endpoints after delete: %+v %v", list, err)
	}
}

// Saves of one campaign within the window make one campaign.saved event,
// covering them all.
func testWebhookSavedWindow(t *testing.T, s store.Store) {
	w, ok := s.(interface{ SetSavedWindow(time.Duration) })
	if !ok {
		t.Skip("this store has no saved window to set")
	}
	w.SetSavedWindow(time.Hour)
	ctx := context.Background()
	ws := ID("w_")
	newEndpoint(t, s, ws)
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	for i, by := range []string{"ann", "bob", "ann"} {
		if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: int64(i + 1), RevFrom: int64(i + 1), Rev: int64(i + 1),
			Doc: json.RawMessage(`{"name":"v"}`), By: by, Authors: []string{by}, Trigger: campaign.TriggerTimer}); err != nil {
			t.Fatal(err)
		}
	}
	evs := events(t, s, ws)
	if len(evs) != 1 {
		t.Fatalf("%d events for three saves within the window", len(evs))
	}
	var p webhook.Saved
	json.Unmarshal(evs[0].Payload, &p)
	if p.FromVersion != 2 || p.Version != 4 || p.RevFrom != 1 || p.RevTo != 3 || len(p.Authors) != 2 {
		t.Fatalf("merged payload %s", evs[0].Payload)
	}
	// Not deliverable before its window ends.
	if got, _ := s.ClaimDeliveries(ctx, time.Now(), time.Minute, 100); containsEvent(got, evs[0].ID) {
		t.Fatal("claimed inside its window")
	}
	if got, _ := s.ClaimDeliveries(ctx, time.Now().Add(2*time.Hour), time.Minute, 1000); !containsEvent(got, evs[0].ID) {
		t.Fatal("not claimable after its window")
	}
}

func containsEvent(ds []webhook.Delivery, id int64) bool {
	for _, d := range ds {
		if d.ID == id {
			return true
		}
	}
	return false
}
