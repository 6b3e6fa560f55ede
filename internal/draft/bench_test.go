package draft

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/testenv"
)

// BenchmarkEditScript is the floor under every edit: the edit script alone,
// called from Go against real Redis, with 1 caller (round trips in series)
// and 64 concurrent callers (go-redis pipelines them over its pool).
func BenchmarkEditScript(b *testing.B) {
	url := testenv.Redis(b)
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			buf, head := openBench(b, url)
			ctx := context.Background()
			var n atomic.Int64
			edit := func(w int64) {
				sess := fmt.Sprint("s", w)
				key := fmt.Sprintf("/fields/w%d/label", w)
				prefix, suffix := protocol.Update{Campaign: "c1", Ops: []byte(`[{"op":"replace","path":"` + key + `","value":"x"}]`), By: protocol.Author{User: "u"}, At: time.Now()}.Frame()
				r, err := buf.Apply(ctx, Batch{Campaign: "c1", Epoch: head.Epoch, Base: 0, Session: sess, User: "u",
					Prefix: prefix, Suffix: suffix, Keys: []string{key}, Writes: []bool{true}})
				if err != nil || r.Outcome != Accepted {
					b.Fatalf("%v %v", r, err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			if callers == 1 {
				for i := 0; i < b.N; i++ {
					edit(0)
				}
			} else {
				b.SetParallelism(callers / 2) // times GOMAXPROCS (2 here)
				b.RunParallel(func(pb *testing.PB) {
					w := n.Add(1)
					for pb.Next() {
						edit(w)
					}
				})
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "edits/s")
		})
	}
}

// openBench opens campaign c1 in a buffer of its own on the Redis at url.
func openBench(b *testing.B, url string) (*Buffer, Head) {
	buf := New(testenv.RedisBackend{URL: url}.Client(b), Options{Prefix: "bench" + randHex(), MaxLog: 1 << 30})
	head, err := buf.Open(context.Background(), "w", "c1", 0, "draft", noFence)
	if err != nil {
		b.Fatal(err)
	}
	return buf, head
}

// BenchmarkEditScriptGroup is one group commit as a busy campaign of the
// C100x10 cell sends it: several sessions' batches in one call, each session
// replacing a field of its own and naming its batch. Its Redis-side cost
// per call is INFO commandstats' evalsha usec_per_call.
func BenchmarkEditScriptGroup(b *testing.B) {
	const group = 5
	buf, head := openBench(b, testenv.Redis(b))
	ctx := context.Background()
	rev := head.Rev
	batches := make([]Batch, group)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for w := range batches {
			key := fmt.Sprintf("/fields/w%d", w)
			prefix, suffix := protocol.Update{Campaign: "c1", Ops: []byte(`[{"op":"add","path":"` + key + `","value":1}]`), By: protocol.Author{User: "u", Session: fmt.Sprint("s", w)}, At: time.Now()}.Frame()
			batches[w] = Batch{Campaign: "c1", Epoch: head.Epoch, Base: rev, Session: fmt.Sprint("s", w), User: "u", ID: fmt.Sprint(i*group + w),
				Prefix: prefix, Suffix: suffix, Keys: []string{key}, Writes: []bool{true}}
		}
		res, err := buf.ApplyMany(ctx, batches)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Outcome != Accepted {
				b.Fatalf("%+v", r)
			}
			rev = r.Rev
		}
	}
	b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "edits/s")
}
