package runner_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

func stores(t *testing.T) map[string]store.Store {
	out := map[string]store.Store{}
	sq, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	out["sqlite"] = sq
	if url := testenv.PostgresIfSet(t); url != "" {
		pg, err := sqlstore.OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		out["postgres"] = pg
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(s string)   { c.mu.Lock(); defer c.mu.Unlock(); c.t, _ = time.Parse(time.RFC3339, s) }
func importLines(t *testing.T, s store.Store, ws, lines string) {
	d, _ := audience.NewDecoder(strings.NewReader(lines), "ndjson")
	if _, err := s.ImportProfiles(context.Background(), ws, d.Next); err != nil {
		t.Fatal(err)
	}
}

// The seed's example, driven by the schedule: a monthly run whose Save
// audience in replace mode drops the profiles that unsubscribed and adds
// the new subscribers; two nodes' schedulers never run an occurrence twice.
func TestMonthlyScheduledRun(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ws := storetest.ID("w_")
			importLines(t, st, ws, `{"id":"p1","subscribed":true}
{"id":"p2","subscribed":true}
{"id":"p3","subscribed":false}
`)
			doc := `{"name":"Monthly","canvas":{"schedule":{"frequency":"monthly","day":1,"at":"06:00","timezone":"Europe/Paris"},
			  "activities":{"q":{"type":"build_audience","config":{"rule":{"field":"subscribed","op":"eq","value":true}}},
			    "save":{"type":"save_audience","config":{"mode":"create_or_update","label":"Monthly subscribers","update_mode":"replace"}}},
			  "transitions":[{"from":"q","to":"save"}]}}`
			c := &campaign.Campaign{ID: storetest.ID("c_"), Workspace: ws, Name: "Monthly", Draft: json.RawMessage(doc), UpdatedBy: "u"}
			if err := st.CreateCampaign(ctx, c); err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
			clk := &clock{}
			var mu sync.Mutex
			var events []string
			notify := func(_ context.Context, _, id, activity string, res store.AudienceSaved) {
				mu.Lock()
				defer mu.Unlock()
				if id == c.ID {
					b, _ := json.Marshal(res)
					events = append(events, string(b))
				}
			}
			nodes := []*runner.Scheduler{
				{Runner: runner.New(st, log), Store: st, Saved: notify, Now: clk.Now, Log: log},
				{Runner: runner.New(st, log), Store: st, Saved: notify, Now: clk.Now, Log: log},
			}
			tick := func() {
				var wg sync.WaitGroup
				for _, n := range nodes {
					wg.Add(1)
					go func() { defer wg.Done(); n.Tick(ctx) }()
				}
				wg.Wait()
			}
			members := func() string {
				list, _ := st.Audiences(ctx, ws, "Monthly")
				if len(list) != 1 {
					return "none"
				}
				d, _ := st.Audience(ctx, ws, list[0].ID, 0, 100)
				var ids []string
				for _, r := range d.Rows {
					ids = append(ids, r["id"].(string))
				}
				return strings.Join(ids, ",")
			}
			clk.Set("2026-11-23T10:00:00Z")
			tick() // schedules the next run: 1 December, 06:00 Paris
			if members() != "none" {
				t.Fatal("ran before it was due")
			}
			clk.Set("2026-12-01T05:01:00Z")
			tick()
			tick()
			if got := members(); got != "p1,p2" {
				t.Fatalf("first run: %s", got)
			}
			// A month passes: p1 unsubscribes, p3 subscribes, p4 arrives.
			importLines(t, st, ws, `{"id":"p1","subscribed":false}
{"id":"p3","subscribed":true}
{"id":"p4","subscribed":true}
`)
			clk.Set("2026-12-15T00:00:00Z")
			tick() // not due
			clk.Set("2027-01-01T05:00:30Z")
			tick()
			if got := members(); got != "p2,p3,p4" {
				t.Fatalf("second run: %s", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 2 || !strings.Contains(events[1], `"added":2`) || !strings.Contains(events[1], `"removed":1`) || !strings.Contains(events[0], `"created":true`) {
				t.Fatalf("runs announced: %v", events)
			}
		})
	}
}
