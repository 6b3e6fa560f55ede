package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/randid"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
	"github.com/collab-dev/collab/internal/testenv"
	"github.com/collab-dev/collab/internal/webhook"
	"github.com/collab-dev/collab/internal/webhook/outbox"
)

// receiverDown is how long the receiver refuses everything.
const receiverDown = 30 * time.Second

// receiver is a platform's webhook endpoint: it checks every signature and
// records each event it accepted, in the order it accepted them.
type receiver struct {
	secret string
	upAt   time.Time

	mu       sync.Mutex
	accepted map[string]int     // idempotency key -> 2xx answers
	order    map[string][]int64 // campaign -> event ids, as accepted
	refused  int
	bad      []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := webhook.Verify(rc.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		rc.bad = append(rc.bad, "signature: "+err.Error())
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	if json.Unmarshal(body, &ev) != nil || ev.ID != r.Header.Get("Idempotency-Key") {
		rc.bad = append(rc.bad, "envelope: "+string(body))
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	if time.Now().Before(rc.upAt) {
		rc.refused++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var data struct {
		Campaign string `json:"campaign"`
	}
	json.Unmarshal(ev.Data, &data)
	var id int64
	fmt.Sscanf(ev.ID, "evt_%d", &id)
	rc.accepted[ev.ID]++
	rc.order[data.Campaign] = append(rc.order[data.Campaign], id)
}

type backend struct {
	name string
	open func(t *testing.T) *sqlstore.DB // a node's own handle on the shared store
}

func backends(t *testing.T) []backend {
	dir := t.TempDir()
	list := []backend{{"sqlite", func(t *testing.T) *sqlstore.DB {
		s, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "collab.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}}}
	if testenv.PostgresIfSet(t) != "" {
		// A schema of the test's own: the suites share one database, and
		// a deliverer claims every pending delivery it holds, other tests'
		// too (as it should in production).
		url := testenv.PostgresSchema(t)
		list = append(list, backend{"postgres", func(t *testing.T) *sqlstore.DB {
			s, err := sqlstore.OpenPostgres(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}})
	}
	return list
}

// A receiver down for 30 s gets every event once it is back, each exactly
// once by idempotency key although two nodes deliver side by side, one
// campaign's events in the order they were written, every one signed.
func TestDownReceiverGetsEveryEventOnceInOrder(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			node1, node2 := b.open(t), b.open(t)
			rc := &receiver{secret: "whsec_" + randid.New(""), upAt: time.Now().Add(receiverDown),
				accepted: map[string]int{}, order: map[string][]int64{}}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			ws := randid.New("w_")
			if err := node1.CreateEndpoint(ctx, webhook.Endpoint{ID: randid.New("wh_"), Workspace: ws, URL: srv.URL, Secret: rc.secret,
				CreatedAt: time.Now(), CreatedBy: "admin"}); err != nil {
				t.Fatal(err)
			}
			opts := outbox.Options{Retry: webhook.Retry{Base: 100 * time.Millisecond, Max: time.Second}, Poll: 50 * time.Millisecond}
			runCtx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for _, n := range []*sqlstore.DB{node1, node2} {
				wg.Add(1)
				go func() { defer wg.Done(); outbox.New(n, opts, slog.Default()).Run(runCtx) }()
			}
			defer func() { stop(); wg.Wait() }()

			// Three campaigns, each launched and saved four times, from
			// either node, while the receiver is down.
			var ids []string
			for i := 0; i < 3; i++ {
				c := &campaign.Campaign{ID: randid.New("c_"), Workspace: ws, Name: "c", Draft: json.RawMessage(`{}`), UpdatedBy: "ann"}
				if err := node1.CreateCampaign(ctx, c); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
			}
			for round := 1; round <= 4; round++ {
				for i, id := range ids {
					n := []*sqlstore.DB{node1, node2}[(round+i)%2]
					if round == 1 {
						if _, err := n.Transition(ctx, ws, id, campaign.Launch); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := n.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: id, BaseVersion: int64(round), RevFrom: int64(round), Rev: int64(round),
						Doc: json.RawMessage(`{"n":1}`), By: "ann", Authors: []string{"ann"}, Trigger: campaign.TriggerTimer}); err != nil {
						t.Fatal(err)
					}
				}
			}
			evs, err := node1.Events(ctx, ws, 0, 1000)
			if err != nil || len(evs) != 15 {
				t.Fatalf("%d events (%v), want 15", len(evs), err)
			}
			deadline := time.Now().Add(receiverDown + 30*time.Second)
			for {
				rc.mu.Lock()
				n, refused := len(rc.accepted), rc.refused
				rc.mu.Unlock()
				if n == len(evs) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d events delivered %s after the receiver came back (%d refused while down)", n, len(evs), 30*time.Second, refused)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // room for a duplicate to show
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.bad) > 0 {
				t.Fatalf("refused as malformed: %v", rc.bad)
			}
			if rc.refused == 0 {
				t.Fatal("nothing was tried while the receiver was down")
			}
			want := map[string][]int64{}
			for _, e := range evs {
				if rc.accepted[e.Key()] != 1 {
					t.Errorf("%s accepted %d times", e.Key(), rc.accepted[e.Key()])
				}
				want[e.Campaign] = append(want[e.Campaign], e.ID)
			}
			for c, w := range want {
				if fmt.Sprint(rc.order[c]) != fmt.Sprint(w) {
					t.Errorf("campaign %s: accepted %v, written %v", c, rc.order[c], w)
				}
			}
			t.Logf("%d events, %d attempts refused while down, all delivered once, in order per campaign", len(evs), rc.refused)
		})
	}
}
