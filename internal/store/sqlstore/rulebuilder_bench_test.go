package sqlstore

import (
	"context"
	"encoding/json"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/storetest"
)

// timed runs fn b.N times and reports the p50 and p99 of its durations.
func timed(b *testing.B, fn func(i int)) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fn(i)
		lat = append(lat, time.Since(t0))
	}
	reportLatencies(b, lat)
}

// reportLatencies adds p50 and p99 (ms) of the per-iteration times.
func reportLatencies(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[min(len(d)-1, len(d)*99/100)].Microseconds())/1000, "p99-ms")
}

// BenchmarkAttributes_1M lists the attributes of a workspace of 1M profiles
// as the rule builder's picker asks for them (uncached: count, then types,
// fill and frequent values over the sample).
func BenchmarkAttributes_1M(b *testing.B) {
	s := benchPG(b)
	ws := seeded(b, s)
	ctx := context.Background()
	timed(b, func(int) {
		total, err := s.ProfileCount(ctx, ws)
		if err != nil {
			b.Fatal(err)
		}
		a, err := s.ProfileAttributes(ctx, ws, total, audience.AttributesSample)
		if err != nil || len(a.Attributes) < 5 {
			b.Fatalf("%+v %v", a, err)
		}
	})
}

// BenchmarkLiveCount_1M is the builder's live count on 1M profiles: a rule
// of two conditions, estimated from the sample (the total is cached with
// the attributes, as runner.Catalog does).
func BenchmarkLiveCount_1M(b *testing.B) {
	s := benchPG(b)
	ws := seeded(b, s)
	ctx := context.Background()
	total, _ := s.ProfileCount(ctx, ws)
	rules := []string{
		`{"all":[{"field":"country","op":"eq","value":"FR"},{"field":"subscribed","op":"eq","value":true}]}`,
		`{"any":[{"field":"age","op":"between","value":[25,40]},{"field":"plan","op":"in","value":["pro","team"]}]}`,
		`{"field":"signup","op":"within_days","value":365}`,
	}
	parsed := make([]*audience.Rule, len(rules))
	for i, raw := range rules {
		parsed[i], _ = audience.ParseRule(json.RawMessage(raw))
	}
	timed(b, func(i int) {
		if _, _, err := s.EstimateMatches(ctx, ws, parsed[i%len(parsed)], total, audience.CountSample); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkExportCSV_1M streams an audience of 1M members through
// EachMember (what GET .../members.csv writes), reporting the peak heap
// growth while it runs: the export must cost a row, not the audience.
func BenchmarkExportCSV_1M(b *testing.B) {
	s := benchPG(b)
	ws := seeded(b, s)
	ctx := context.Background()
	c, _ := audience.ParseCanvas(json.RawMessage(`{"activities":{"all":{"type":"build_audience","config":{"rule":{"field":"country","op":"not_empty"},"columns":["email","country","city"]}}}}`))
	pop, err := (&audience.Planner{Canvas: c, Workspace: ws, Dialect: s.Dialect()}).Plan("all")
	if err != nil {
		b.Fatal(err)
	}
	saved, err := s.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: "create_or_update", Label: storetest.ID("everyone "), UpdateMode: "replace", Population: pop, NewID: storetest.ID("a_")})
	if err != nil || saved.Count != million {
		b.Fatalf("%+v %v", saved, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		peak := before.HeapInuse
		rows := 0
		err := s.EachMember(ctx, ws, saved.Audience, func([]string) error { return nil }, func(v []any) error {
			if rows++; rows%50_000 == 0 {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
			return nil
		})
		if err != nil || rows != million {
			b.Fatalf("%d rows, %v", rows, err)
		}
		b.ReportMetric(float64(peak-before.HeapInuse)/(1<<20), "peak-heap-MiB")
	}
}
