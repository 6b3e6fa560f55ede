package autosave_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/autosave"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session/sessiontest"
)

// BenchmarkFlush_1000DirtyCampaigns: 1,000 campaigns with one unsaved edit
// each (a 2 KiB document), flushed by a node's flusher with its default
// concurrency; reports flushes per second.
func BenchmarkFlush_1000DirtyCampaigns(b *testing.B) {
	c := sessiontest.RealCluster(b, draft.Options{})
	ctx := context.Background()
	n := c.Node(sessiontestConfig())
	f := autosave.New(n.Buf, c.Store, autosave.Options{}, quiet)
	const campaigns = 1000
	doc := `{"name":"bench","body":"` + strings.Repeat("x", 2048) + `"}`
	ids := make([]string, campaigns)
	for round := 0; round < b.N; round++ {
		for i := range ids {
			if round == 0 {
				ids[i] = c.Campaign("w1", doc)
			}
			cp, _ := c.Store.Campaign(ctx, "w1", ids[i])
			head, err := n.Buf.Open(ctx, "w1", ids[i], cp.Rev, "draft", func(ctx context.Context, epoch string) error {
				return c.Store.FenceEpoch(ctx, "w1", ids[i], cp.Epoch, cp.Rev, epoch)
			})
			if err != nil {
				b.Fatal(err)
			}
			prefix, suffix := protocol.Update{Campaign: ids[i], Ops: []byte(`[{"op":"replace","path":"/name","value":"edited"}]`), By: protocol.Author{User: "u", Session: "s"}, At: time.Now()}.Frame()
			if _, err := n.Buf.Apply(ctx, draft.Batch{Campaign: ids[i], Epoch: head.Epoch, Base: head.Rev, Session: "s", User: "u",
				Prefix: prefix, Suffix: suffix, Keys: []string{"/name"}, Writes: []bool{true}}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		work := make(chan string)
		var wrote atomic.Int64
		for w := 0; w < 8; w++ { // the flusher's default concurrency
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					res, err := f.Flush(ctx, id, campaign.TriggerTimer, true)
					if err != nil {
						b.Error(err)
					}
					if res.Wrote {
						wrote.Add(1)
					}
				}
			}()
		}
		for _, id := range ids {
			work <- id
		}
		close(work)
		wg.Wait()
		b.StopTimer()
		if wrote.Load() != campaigns {
			b.Fatalf("%d of %d flushes wrote", wrote.Load(), campaigns)
		}
		b.ReportMetric(float64(campaigns)/time.Since(start).Seconds(), "flushes/s")
	}
}

// BenchmarkAckToDurable: 50 campaigns with 2 writers each editing at
// 5 edits/s per writer (500 edits/s) for 10 s with the default 2 s
// interval; for every acknowledged edit, the time from its ack to the
// `saved` push whose rev covers it.
func BenchmarkAckToDurable(b *testing.B) {
	c := sessiontest.RealCluster(b, draft.Options{})
	var f *autosave.Flusher
	n := c.Node(sessiontestConfig(), func(n *sessiontest.Node) {
		f = autosave.New(n.Buf, c.Store, autosave.Options{Interval: 2 * time.Second}, quiet)
		n.Hub.SetSaver(f)
		f.SetHolder(n.Hub)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.Run(ctx) }()
		n.OnStop(func() { cancel(); <-done })
	})
	const campaigns, writers = 50, 2
	const d = 10 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for ci := 0; ci < campaigns; ci++ {
		id := c.Campaign("w1", `{"name":"bench"}`)
		for wi := 0; wi < writers; wi++ {
			cl := c.ConnectB(b, n, fmt.Sprintf("u%d", wi), "w1", auth.Editor)
			snap := cl.Join(id)
			wg.Add(1)
			go func(wi int, base int64) {
				defer wg.Done()
				acked := map[int64]time.Time{} // rev -> ack time, awaiting a save
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				end := time.Now().Add(d)
				seq := 0
				for {
					select {
					case <-tick.C:
						if time.Now().Before(end) {
							cl.Send(map[string]any{"type": "edit", "campaign": id, "base": base,
								"ops": []map[string]any{{"op": "add", "path": fmt.Sprintf("/w%d", wi), "value": seq}}})
							seq++
						}
					case m, ok := <-cl.In:
						if !ok {
							return
						}
						now := time.Now()
						switch m["type"] {
						case "ack":
							base = sessiontest.Num(m["rev"])
							acked[base] = now
						case "update":
							base = max(base, sessiontest.Num(m["rev"]))
						case "saved":
							rev := sessiontest.Num(m["rev"])
							mu.Lock()
							for r, at := range acked {
								if r <= rev {
									lat = append(lat, now.Sub(at))
									delete(acked, r)
								}
							}
							mu.Unlock()
						}
					}
					if time.Now().After(end.Add(4*time.Second)) || (time.Now().After(end) && len(acked) == 0) {
						return
					}
				}
			}(wi, sessiontest.Num(snap["rev"]))
		}
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no edit became durable")
	}
	b.ReportMetric(float64(len(lat)), "edits")
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}
