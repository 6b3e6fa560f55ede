// Package storetest is the conformance suite every store.Store backend must
// pass. Backends call Run from their own tests with a function that opens a
// fresh store; each test uses its own workspace ids, so backends may share
// one database.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/randid"
	"github.com/collab-dev/collab/internal/store"
)

// Open returns a ready store for one test; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateGetList", testCreateGetList},
		{"Lifecycle", testLifecycle},
		{"SaveDraftVersionCheck", testSaveDraftVersionCheck},
		{"SaveDraftFencing", testSaveDraftFencing},
		{"EpochFence", testEpochFence},
		{"ArchivedRefusesSaves", testArchivedRefusesSaves},
		{"History", testHistory},
		{"Publish", testPublish},
		{"WorkspaceIsolation", testWorkspaceIsolation},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Rules", testRules},
		{"Import", testImport},
		{"Attributes", testAttributes},
		{"Activities", testActivities},
		{"SaveAudience", testSaveAudience},
		{"ActivityResults", testActivityResults},
		{"MonthlyReplace", testMonthlyReplace},
		{"SchedulesFollowSaves", testSchedulesFollowSaves},
		{"WebhookOutbox", testWebhookOutbox},
		{"WebhookSavedWindow", testWebhookSavedWindow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
	t.Run("ClosedStoreErrors", func(t *testing.T) {
		s := open(t)
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := s.Campaigns(ctx, "w"); err == nil {
			t.Fatal("a closed store answered")
		}
		if err := s.Ping(ctx); err == nil {
			t.Fatal("a closed store pinged")
		}
		if time.Since(start) > 4*time.Second {
			t.Fatal("a closed store hung instead of failing")
		}
	})
}

// ID returns a unique id with a prefix, for test workspaces and campaigns.
func ID(prefix string) string {
	return randid.New(prefix)
}

func newCampaign(t *testing.T, s store.Store, ws string, doc string) *campaign.Campaign {
	t.Helper()
	c := &campaign.Campaign{ID: ID("c_"), Workspace: ws, Name: "Spring sale", Draft: json.RawMessage(doc), UpdatedBy: "u1"}
	if err := s.CreateCampaign(context.Background(), c); err != nil {
		t.Fatalf("create: %v", err)
	}
	return c
}

func wantCode(t *testing.T, err error, code errcode.Code) {
	t.Helper()
	if errcode.Of(err) != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func testCreateGetList(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"Spring sale"}`)
	if c.Version != 1 || c.Status != campaign.Draft {
		t.Fatalf("created: %+v", c)
	}
	got, err := s.Campaign(ctx, ws, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Spring sale" || string(got.Draft) != `{"name":"Spring sale"}` || got.Live != nil || got.Version != 1 || got.Status != campaign.Draft {
		t.Fatalf("got %+v", got)
	}
	time.Sleep(2 * time.Millisecond)
	c2 := newCampaign(t, s, ws, `{"name":"Second"}`)
	list, err := s.Campaigns(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != c2.ID || list[1].ID != c.ID {
		t.Fatalf("list: %+v", list)
	}
	_, err = s.Campaign(ctx, ws, "c_missing")
	wantCode(t, err, errcode.NotFound)
	if err := s.CreateCampaign(ctx, &campaign.Campaign{ID: c.ID, Workspace: ws, Name: "dup", Draft: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("duplicate id accepted")
	}
}

func testLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"v1"}`)
	_, err := s.Transition(ctx, ws, c.ID, campaign.Stop)
	wantCode(t, err, errcode.Conflict)
	got, err := s.Transition(ctx, ws, c.ID, campaign.Launch)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != campaign.Active || string(got.Live) != `{"name":"v1"}` {
		t.Fatalf("launched: %+v", got)
	}
	// A later draft does not reach live through stop/resume.
	if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 1, Doc: json.RawMessage(`{"name":"v2"}`), By: "u1", Trigger: campaign.TriggerTimer}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, ws, c.ID, campaign.Stop); err != nil {
		t.Fatal(err)
	}
	got, err = s.Transition(ctx, ws, c.ID, campaign.Resume)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != campaign.Active || string(got.Live) != `{"name":"v1"}` {
		t.Fatalf("resumed: %+v", got)
	}
	got, err = s.Transition(ctx, ws, c.ID, campaign.Archive)
	if err != nil || got.Status != campaign.Archived {
		t.Fatalf("archive: %+v %v", got, err)
	}
	_, err = s.Transition(ctx, ws, c.ID, campaign.Launch)
	wantCode(t, err, errcode.Conflict)
	stored, _ := s.Campaign(ctx, ws, c.ID)
	if stored.Status != campaign.Archived {
		t.Fatalf("stored status %s", stored.Status)
	}
}

// An archived campaign keeps its last saved draft: a flush that raced the
// archive (or a Redis that never heard of it) cannot write into it.
func testArchivedRefusesSaves(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"kept"}`)
	if _, err := s.Transition(ctx, ws, c.ID, campaign.Archive); err != nil {
		t.Fatal(err)
	}
	_, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 1, Doc: json.RawMessage(`{"name":"late"}`), Trigger: campaign.TriggerTimer})
	wantCode(t, err, errcode.Conflict)
	if !errors.Is(err, store.ErrArchived) {
		t.Fatalf("want ErrArchived, got %v", err)
	}
	if got, _ := s.Campaign(ctx, ws, c.ID); string(got.Draft) != `{"name":"kept"}` || got.Version != 1 {
		t.Fatalf("archived draft changed: %s v%d", got.Draft, got.Version)
	}
}

// The draft epoch moves only by compare-and-set from what the opener read,
// and every save must name the stored epoch.
func testEpochFence(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	if c.Epoch != "" {
		t.Fatalf("new campaign epoch %q", c.Epoch)
	}
	save := func(version, rev int64, epoch string) error {
		_, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: version, RevFrom: rev, Rev: rev, Epoch: epoch,
			Doc: json.RawMessage(fmt.Sprintf(`{"name":"r%d"}`, rev)), Trigger: campaign.TriggerTimer})
		return err
	}
	if err := s.FenceEpoch(ctx, ws, c.ID, "", 0, "e1"); err != nil {
		t.Fatal(err)
	}
	if err := s.FenceEpoch(ctx, ws, c.ID, "", 0, "e1"); err != nil {
		t.Fatalf("fencing the same epoch again: %v", err)
	}
	// A stale opener that read "" before e1 was fenced cannot move it.
	if err := s.FenceEpoch(ctx, ws, c.ID, "", 0, "e0"); !errors.Is(err, store.ErrEpochFenced) {
		t.Fatalf("stale fence: %v", err)
	}
	if err := save(1, 1, "e1"); err != nil {
		t.Fatal(err)
	}
	// An opener that read rev 0 cannot fence after a save moved the rev.
	if err := s.FenceEpoch(ctx, ws, c.ID, "e1", 0, "e2"); !errors.Is(err, store.ErrEpochFenced) {
		t.Fatalf("fence over a moved rev: %v", err)
	}
	if err := s.FenceEpoch(ctx, ws, c.ID, "e1", 1, "e2"); err != nil {
		t.Fatal(err)
	}
	// A flush of the ended epoch is refused; one of the new epoch commits.
	err := save(2, 2, "e1")
	wantCode(t, err, errcode.Conflict)
	if !errors.Is(err, store.ErrEpochFenced) {
		t.Fatalf("old-epoch save: %v", err)
	}
	if err := save(2, 2, "e2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Campaign(ctx, ws, c.ID); got.Epoch != "e2" || got.Rev != 2 {
		t.Fatalf("stored epoch %q rev %d", got.Epoch, got.Rev)
	}
	if err := s.FenceEpoch(ctx, ID("w_"), c.ID, "e2", 2, "e3"); errcode.Of(err) != errcode.NotFound {
		t.Fatalf("another workspace's fence: %v", err)
	}
}

func testSaveDraftVersionCheck(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	v, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 3, Doc: json.RawMessage(`{"name":"b"}`), By: "u1", Trigger: campaign.TriggerManual})
	if err != nil || v != 2 {
		t.Fatalf("save: %d %v", v, err)
	}
	// The same base again: the version moved, the first writer won.
	_, err = s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 4, Doc: json.RawMessage(`{"name":"c"}`), By: "u2", Trigger: campaign.TriggerManual})
	wantCode(t, err, errcode.Conflict)
	got, _ := s.Campaign(ctx, ws, c.ID)
	if string(got.Draft) != `{"name":"b"}` || got.Version != 2 || got.Rev != 3 || got.UpdatedBy != "u1" {
		t.Fatalf("after conflict: %+v", got)
	}
	_, err = s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: "c_missing", BaseVersion: 1, Rev: 1, Doc: json.RawMessage(`{}`)})
	wantCode(t, err, errcode.NotFound)
}

func testSaveDraftFencing(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 10, Doc: json.RawMessage(`{"name":"r10"}`), Trigger: campaign.TriggerTimer}); err != nil {
		t.Fatal(err)
	}
	// A flusher that read version 2 but holds only rev 9 is stale: refused.
	for _, rev := range []int64{9, 10} {
		_, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 2, RevFrom: 1, Rev: rev, Doc: json.RawMessage(`{"name":"stale"}`), Trigger: campaign.TriggerTimer})
		wantCode(t, err, errcode.Conflict)
	}
	got, _ := s.Campaign(ctx, ws, c.ID)
	if string(got.Draft) != `{"name":"r10"}` || got.Rev != 10 {
		t.Fatalf("stale flush landed: %+v", got)
	}
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	for i, trig := range []campaign.Trigger{campaign.TriggerTimer, campaign.TriggerTab} {
		if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: int64(i + 1), RevFrom: int64(2*i + 1), Rev: int64(2*i + 2),
			Doc: json.RawMessage(fmt.Sprintf(`{"name":"v%d"}`, i+2)), By: "u2", Authors: []string{"u2", "u3"}, Trigger: trig}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Versions(ctx, ws, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Version != 3 || list[0].Trigger != campaign.TriggerTab || list[0].RevFrom != 3 || list[0].Rev != 4 ||
		list[2].Trigger != campaign.TriggerCreate || len(list[0].Authors) != 2 || list[0].By != "u2" || list[0].Doc != nil {
		t.Fatalf("versions: %+v", list)
	}
	v, err := s.Version(ctx, ws, c.ID, 2)
	if err != nil || string(v.Doc) != `{"name":"v2"}` || v.Trigger != campaign.TriggerTimer {
		t.Fatalf("version 2: %+v %v", v, err)
	}
	_, err = s.Version(ctx, ws, c.ID, 9)
	wantCode(t, err, errcode.NotFound)

	// A label names a version; it shows in the list and the entry.
	if err := s.LabelVersion(ctx, ws, c.ID, 2, "Sent to legal"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.LabelVersion(ctx, ws, c.ID, 9, "x"), errcode.NotFound)
	wantCode(t, s.LabelVersion(ctx, ws+"x", c.ID, 2, "x"), errcode.NotFound) // another workspace
	if v, _ := s.Version(ctx, ws, c.ID, 2); v.Label != "Sent to legal" {
		t.Fatalf("label not kept: %+v", v)
	}
	// A save that covers a restore records it, whatever trigger saved it.
	if _, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 3, RevFrom: 5, Rev: 6,
		Doc: json.RawMessage(`{"name":"v2"}`), By: "u2", Trigger: campaign.TriggerTimer, RestoredFrom: 1}); err != nil {
		t.Fatal(err)
	}
	list, _ = s.Versions(ctx, ws, c.ID)
	if list[0].Version != 4 || list[0].RestoredFrom != 1 || list[0].Trigger != campaign.TriggerRestore || list[1].RestoredFrom != 0 || list[2].Label != "Sent to legal" {
		t.Fatalf("versions after label and restore: %+v", list)
	}

	// People: the latest name wins, per workspace.
	for _, p := range [][2]string{{"u2", "Ann"}, {"u3", "Bob"}, {"u2", "Ann Lee"}} {
		if err := s.SeePerson(ctx, ws, p[0], p[1], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SeePerson(ctx, ws+"other", "u3", "Someone else", time.Now()); err != nil {
		t.Fatal(err)
	}
	names, err := s.PeopleNames(ctx, ws, []string{"u2", "u3", "nobody"})
	if err != nil || len(names) != 2 || names["u2"] != "Ann Lee" || names["u3"] != "Bob" {
		t.Fatalf("names: %v %v", names, err)
	}
}

func testPublish(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	_, err := s.Publish(ctx, ws, c.ID, "u1")
	wantCode(t, err, errcode.Conflict)
	s.Transition(ctx, ws, c.ID, campaign.Launch)
	s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 1, Doc: json.RawMessage(`{"name":"b"}`), Trigger: campaign.TriggerTimer})
	got, _ := s.Campaign(ctx, ws, c.ID)
	if string(got.Live) != `{"name":"a"}` {
		t.Fatalf("a flush changed live content: %s", got.Live)
	}
	v, err := s.Publish(ctx, ws, c.ID, "u1")
	if err != nil || v != 3 {
		t.Fatalf("publish: %d %v", v, err)
	}
	got, _ = s.Campaign(ctx, ws, c.ID)
	if string(got.Live) != `{"name":"b"}` || got.Status != campaign.Active || got.Version != 3 {
		t.Fatalf("published: %+v", got)
	}
}

func testWorkspaceIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws1, ws2 := ID("w_"), ID("w_")
	c := newCampaign(t, s, ws1, `{"name":"secret"}`)
	_, err := s.Campaign(ctx, ws2, c.ID)
	wantCode(t, err, errcode.NotFound)
	list, _ := s.Campaigns(ctx, ws2)
	if len(list) != 0 {
		t.Fatalf("other workspace lists %+v", list)
	}
	_, err = s.Transition(ctx, ws2, c.ID, campaign.Launch)
	wantCode(t, err, errcode.NotFound)
	_, err = s.SaveDraft(ctx, store.DraftSave{Workspace: ws2, ID: c.ID, BaseVersion: 1, Rev: 5, Doc: json.RawMessage(`{}`)})
	wantCode(t, err, errcode.NotFound)
	_, err = s.Versions(ctx, ws2, c.ID)
	wantCode(t, err, errcode.NotFound)
	_, err = s.Version(ctx, ws2, c.ID, 1)
	wantCode(t, err, errcode.NotFound)
	_, err = s.Publish(ctx, ws2, c.ID, "u")
	wantCode(t, err, errcode.NotFound)
	got, _ := s.Campaign(ctx, ws1, c.ID)
	if string(got.Draft) != `{"name":"secret"}` || got.Status != campaign.Draft {
		t.Fatalf("changed by another workspace: %+v", got)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	c := newCampaign(t, s, ws, `{"name":"a"}`)
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'x'
	}
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			doc := fmt.Sprintf(`{"writer":%d,"pad":"%s"}`, i, big)
			_, errs[i] = s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: 1, RevFrom: 1, Rev: 2, Doc: json.RawMessage(doc), By: fmt.Sprint(i), Trigger: campaign.TriggerTimer})
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case errcode.Of(err) != errcode.Conflict:
			t.Fatalf("writer %d: want conflict, got %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got, _ := s.Campaign(ctx, ws, c.ID)
	var doc struct {
		Writer int    `json:"writer"`
		Pad    string `json:"pad"`
	}
	if err := json.Unmarshal(got.Draft, &doc); err != nil {
		t.Fatalf("torn draft: %v", err)
	}
	if doc.Writer != winner || len(doc.Pad) != len(big) || got.Version != 2 || got.UpdatedBy != fmt.Sprint(winner) {
		t.Fatalf("stored draft is not the winner's: writer %d, version %d", doc.Writer, got.Version)
	}
	versions, _ := s.Versions(ctx, ws, c.ID)
	if len(versions) != 2 {
		t.Fatalf("%d history entries, want 2", len(versions))
	}
}
