package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

// BenchmarkSaveDraft measures one draft save (the conditional update plus
// its history row) by document size, on each backend.
func BenchmarkSaveDraft(b *testing.B) {
	backends := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store {
			s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "c.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func(b *testing.B) store.Store {
			s, err := OpenPostgres(context.Background(), testenv.Postgres(b))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, size := range []int{10 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", backend, size>>10), func(b *testing.B) {
				s := backends[backend](b)
				defer s.Close()
				ctx := context.Background()
				ws := storetest.ID("w_")
				doc := json.RawMessage(fmt.Sprintf(`{"name":"bench","body":"%s"}`, strings.Repeat("x", size-30)))
				c := &campaign.Campaign{ID: storetest.ID("c_"), Workspace: ws, Name: "bench", Draft: doc}
				if err := s.CreateCampaign(ctx, c); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(doc)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, err := s.SaveDraft(ctx, store.DraftSave{Workspace: ws, ID: c.ID, BaseVersion: int64(i + 1),
						RevFrom: int64(i + 1), Rev: int64(i + 1), Doc: doc, By: "u", Authors: []string{"u"}, Trigger: campaign.TriggerTimer})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
