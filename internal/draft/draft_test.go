package draft

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/testenv"
)

// forEachRedis runs fn against the embedded server and, when configured,
// real Redis, each test with its own key prefix.
func forEachRedis(t *testing.T, opts Options, fn func(t *testing.T, b *Buffer)) {
	for _, be := range testenv.RedisBackends(t) {
		t.Run(be.Name, func(t *testing.T) {
			o := opts
			o.Prefix = "t" + randHex()
			fn(t, New(be.Client(t), o))
		})
	}
}

func randHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// noFence stands for a durable store whose epoch always moves.
func noFence(context.Context, string) error { return nil }

type editor struct {
	t    *testing.T
	b    *Buffer
	c    string
	head Head
}

func open(t *testing.T, b *Buffer) *editor {
	h, err := b.Open(context.Background(), "w1", "c1", 0, "draft", noFence)
	if err != nil {
		t.Fatal(err)
	}
	return &editor{t: t, b: b, c: "c1", head: h}
}

// edit writes the given keys ("/a" writes, "?/a" tests) as session sess.
func (e *editor) edit(sess string, base int64, id string, keys ...string) Result {
	e.t.Helper()
	batch := Batch{Workspace: "w1", Campaign: e.c, Epoch: e.head.Epoch, Base: base, Session: sess, User: "u-" + sess[:1], ID: id, Origin: "node-a"} // sessions A and A2 are one user
	batch.Prefix, batch.Suffix = protocol.Update{Campaign: e.c, Ops: []byte(`[]`), By: protocol.Author{Session: sess}, At: time.Now()}.Frame()
	for _, k := range keys {
		batch.Keys = append(batch.Keys, strings.TrimPrefix(k, "?"))
		batch.Writes = append(batch.Writes, !strings.HasPrefix(k, "?"))
	}
	r, err := e.b.Apply(context.Background(), batch)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func want(t *testing.T, r Result, o Outcome, rev int64) {
	t.Helper()
	if r.Outcome != o || r.Rev != rev {
		t.Fatalf("got %s rev %d (conflicts %v), want %s rev %d", r.Outcome, r.Rev, r.Conflicts, o, rev)
	}
}

func TestFirstWriterWins(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		want(t, e.edit("A", 0, "", "/name"), Accepted, 1)
		// B did not see rev 1: same path conflicts, and names the key.
		r := e.edit("B", 0, "", "/name")
		want(t, r, Conflict, 1)
		if len(r.Conflicts) != 1 || r.Conflicts[0] != "/name" {
			t.Fatalf("conflicts %v", r.Conflicts)
		}
		// A session never conflicts with itself.
		want(t, e.edit("A", 0, "", "/name"), Accepted, 2)
		// Having seen rev 2, B wins the path.
		want(t, e.edit("B", 2, "", "/name"), Accepted, 3)
		// Prefix overlaps both ways; siblings and look-alike names do not.
		want(t, e.edit("A", 2, "", "/name/first"), Conflict, 3)
		want(t, e.edit("A", 2, "", "/names"), Accepted, 4)
		want(t, e.edit("A", 2, "", "/other/deep/x"), Accepted, 5)
		want(t, e.edit("B", 4, "", "/other"), Conflict, 5)
		want(t, e.edit("B", 4, "", "/other/deep/y"), Accepted, 6)
		// Non-overlapping stale edits are accepted.
		want(t, e.edit("C", 0, "", "/messages/email/subject"), Accepted, 7)
		// An array is one field: its conflict key is the array's path.
		want(t, e.edit("A", 7, "", "/canvas/transitions"), Accepted, 8)
		want(t, e.edit("B", 7, "", "/canvas/transitions"), Conflict, 8)
		// A test op is checked for overlap but does not claim the path.
		want(t, e.edit("C", 8, "", "?/flag"), Accepted, 9)
		want(t, e.edit("A", 8, "", "/flag"), Accepted, 10)
		// Several ops: one conflicting key refuses the whole batch.
		r = e.edit("B", 9, "", "/free", "/flag")
		want(t, r, Conflict, 10)
		if len(r.Conflicts) != 1 || r.Conflicts[0] != "/flag" {
			t.Fatalf("conflicts %v", r.Conflicts)
		}
		// and nothing of it was recorded: /free is still free for A at an old base
		want(t, e.edit("A", 0, "", "/free"), Accepted, 11)
	})
}

// The newest writer of a path may be me while another session wrote it after
// my base: that is still a conflict.
func TestConflictHiddenBehindOwnWrite(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		want(t, e.edit("A", 0, "", "/x"), Accepted, 1)
		want(t, e.edit("B", 0, "", "/a/x"), Accepted, 2)
		want(t, e.edit("A", 1, "", "/a/y"), Accepted, 3)
		want(t, e.edit("A", 1, "", "/a"), Conflict, 3)
		want(t, e.edit("B", 0, "", "/y"), Accepted, 4)
		want(t, e.edit("A", 3, "", "/y"), Conflict, 4)
	})
}

func TestIdempotentResend(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		want(t, e.edit("A", 0, "b1", "/name"), Accepted, 1)
		want(t, e.edit("B", 1, "", "/other"), Accepted, 2)
		// The same user and batch id, from a new session after a reconnect.
		want(t, e.edit("A2", 0, "b1", "/name"), Duplicate, 1)
		log, err := b.Log(context.Background(), "c1", 0, -1)
		if err != nil || len(log) != 2 {
			t.Fatalf("log %d entries, %v", len(log), err)
		}
		// The same id from another user is another batch.
		batch := Batch{Campaign: "c1", Epoch: e.head.Epoch, Base: 2, Session: "Z", User: "someone-else", ID: "b1",
			Keys: []string{"/z"}, Writes: []bool{true}}
		r, _ := b.Apply(context.Background(), batch)
		want(t, r, Accepted, 3)
	})
}

func TestLogAndTrim(t *testing.T) {
	forEachRedis(t, Options{Keep: 2}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		for i := int64(1); i <= 6; i++ {
			want(t, e.edit("A", i-1, fmt.Sprint("id", i), fmt.Sprintf("/k%d", i)), Accepted, i)
		}
		log, _ := b.Log(ctx, "c1", 2, 4)
		if len(log) != 2 || log[0].Rev != 3 || log[1].Rev != 4 {
			t.Fatalf("range: %+v", log)
		}
		if !strings.HasPrefix(string(log[0].Msg), `{"type":"update","campaign":"c1","rev":3,`) {
			t.Fatalf("entry %s", log[0].Msg)
		}
		// Flushed up to 5, keep 2: trimmed to revs after 4.
		h, err := b.Flushed(ctx, "c1", 5)
		if err != nil || h.Floor != 4 || h.Flushed != 5 {
			t.Fatalf("flushed: %+v %v", h, err)
		}
		log, _ = b.Log(ctx, "c1", 0, -1)
		if len(log) != 2 || log[0].Rev != 5 {
			t.Fatalf("after trim: %+v", log)
		}
		// A base below the floor can no longer be checked: gap.
		want(t, e.edit("B", 3, "", "/zzz"), Gap, 6)
		// A trimmed batch id is forgotten, but its resend has an old base: gap, not a double apply.
		want(t, e.edit("A", 0, "id1", "/k1"), Gap, 6)
		// A kept one is still deduplicated.
		want(t, e.edit("A", 4, "id5", "/k5"), Duplicate, 5)
		// Base above the head.
		want(t, e.edit("A", 99, "", "/k"), Ahead, 6)
		// Flushing never trims what is not flushed.
		h, _ = b.Flushed(ctx, "c1", 3)
		if h.Flushed != 5 || h.Floor != 4 {
			t.Fatalf("flushed went backwards: %+v", h)
		}
	})
}

// TestTrimInChunks: a flush of more entries than one call of the trim
// takes (trimChunk) still trims them all, and their batch ids with them,
// so that Redis is never held for the whole backlog at once.
func TestTrimInChunks(t *testing.T) {
	forEachRedis(t, Options{Keep: 10}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		n := int64(2*trimChunk + 37)
		for i := int64(1); i <= n; i++ {
			want(t, e.edit("A", i-1, fmt.Sprint("id", i), "/k"), Accepted, i)
		}
		// One call trims one chunk, and says more is left.
		k := b.keys("c1")
		res, err := flushedScript.Run(ctx, b.rdb, []string{k.meta, k.log, k.ids, k.idlog}, n, 10, trimChunk).StringSlice()
		if err != nil || res[2] != fmt.Sprint(trimChunk) || res[3] != "1" {
			t.Fatalf("one call of the trim: %v %v", res, err)
		}
		if l, _ := b.rdb.XLen(ctx, k.log).Result(); l != n-trimChunk {
			t.Fatalf("one call left %d of %d entries", l, n)
		}
		h, err := b.Flushed(ctx, "c1", n)
		if err != nil || h.Floor != n-10 || h.Flushed != n {
			t.Fatalf("flushed: %+v %v", h, err)
		}
		log, _ := b.Log(ctx, "c1", 0, -1)
		if len(log) != 10 || log[0].Rev != n-9 {
			t.Fatalf("after trim: %d entries from rev %d", len(log), log[0].Rev)
		}
		if ids, _ := b.rdb.HLen(ctx, k.ids).Result(); ids != 10 {
			t.Fatalf("%d batch ids kept for 10 entries", ids)
		}
		if l, _ := b.rdb.LLen(ctx, k.idlog).Result(); l != 10 {
			t.Fatalf("the id list holds %d for 10 entries", l)
		}

		// A log written before the id list existed is trimmed by reading
		// its entries' ids.
		for i := n + 1; i <= n+300; i++ {
			want(t, e.edit("A", i-1, fmt.Sprint("id", i), "/k"), Accepted, i)
		}
		b.rdb.Del(ctx, k.idlog)
		if _, err := b.Flushed(ctx, "c1", n+300); err != nil {
			t.Fatal(err)
		}
		if ids, _ := b.rdb.HLen(ctx, k.ids).Result(); ids != 10 {
			t.Fatalf("without the id list: %d batch ids kept for 10 entries", ids)
		}
	})
}

func TestEpochs(t *testing.T) {
	forEachRedis(t, Options{MaxLog: 3}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		again, _ := b.Open(ctx, "w1", "c1", 0, "draft", noFence)
		if again.Epoch != e.head.Epoch || again.Created {
			t.Fatalf("reopen changed epoch: %+v vs %+v", again, e.head)
		}
		want(t, e.edit("A", 0, "", "/a"), Accepted, 1)
		want(t, e.edit("A", 1, "", "/b"), Accepted, 2)
		want(t, e.edit("A", 2, "", "/c"), Accepted, 3)
		want(t, e.edit("A", 3, "", "/d"), Full, 3)
		// SQL saved rev 7 but Redis says 3: Redis lost writes, new epoch from 7.
		h, err := b.Open(ctx, "w1", "c1", 7, "draft", noFence)
		if err != nil || h.Epoch == e.head.Epoch || h.Rev != 7 || h.Floor != 7 || !h.Created {
			t.Fatalf("behind: %+v %v", h, err)
		}
		want(t, e.edit("A", 3, "", "/a"), EpochLost, 7)
		e.head = h
		want(t, e.edit("A", 7, "", "/a"), Accepted, 8)
		// Lifecycle: archived refuses.
		if err := b.SetStatus(ctx, "c1", "archived"); err != nil {
			t.Fatal(err)
		}
		want(t, e.edit("A", 8, "", "/z"), Archived, 8)
		// A lost buffer.
		b.rdb.Del(ctx, b.keys("c1").meta)
		want(t, e.edit("A", 8, "", "/z"), NoBuffer, 0)
	})
}

// An edit marks its campaign dirty at the time of the edit, in ms (what
// OldestDirty reads), and a later edit keeps the first mark: autosave
// judges a campaign by its oldest unsaved edit.
func TestDirtyMark(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		before := time.Now().UnixMilli()
		e.edit("A", 0, "", "/a")
		after := time.Now().UnixMilli()
		n, err := b.rdb.ZScore(context.Background(), b.DirtyKey(), "c1").Result()
		if err != nil || n < float64(before) || n > float64(after) {
			t.Fatalf("marked dirty at %v (%v), want between %d and %d", n, err, before, after)
		}
		time.Sleep(5 * time.Millisecond)
		e.edit("A", 1, "", "/b")
		if again, err := b.rdb.ZScore(context.Background(), b.DirtyKey(), "c1").Result(); err != nil || again != n {
			t.Fatalf("a second edit moved the mark from %v to %v (%v)", n, again, err)
		}
	})
}

func TestPresence(t *testing.T) {
	forEachRedis(t, Options{PresenceTTL: 300 * time.Millisecond}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		got := make(chan string, 16)
		bus := b.NewBus(ctx, slog.Default())
		defer bus.Close()
		if err := bus.Subscribe(ctx, b.Channel("c1"), func(m []byte) {
			if m != nil {
				got <- string(m)
			}
		}); err != nil {
			t.Fatal(err)
		}
		b.SetPresence(ctx, "c1", Presence{User: "u1", Name: "Ann", Session: "s1", Tab: "details"})
		b.SetPresence(ctx, "c1", Presence{User: "u2", Name: "Bob", Session: "s2", Tab: "message"})
		for i := 0; i < 2; i++ {
			if m := <-got; m != `{"type":"presence"}` {
				t.Fatalf("event %s", m)
			}
		}
		list, _ := b.Presence(ctx, "c1")
		if len(list) != 2 {
			t.Fatalf("list %+v", list)
		}
		// Setting the same entry again announces nothing.
		b.SetPresence(ctx, "c1", Presence{User: "u1", Name: "Ann", Session: "s1", Tab: "details"})
		// s1 keeps beating, s2's node died: s2 expires.
		deadline := time.Now().Add(600 * time.Millisecond)
		for time.Now().Before(deadline) {
			b.TouchPresence(ctx, "c1", []string{"s1"})
			time.Sleep(50 * time.Millisecond)
		}
		list, _ = b.Presence(ctx, "c1")
		if len(list) != 1 || list[0].Session != "s1" || list[0].Name != "Ann" {
			t.Fatalf("after expiry %+v", list)
		}
		select {
		case m := <-got:
			if m != `{"type":"presence"}` {
				t.Fatalf("event %s", m)
			}
		case <-time.After(time.Second):
			t.Fatal("expiry was not announced")
		}
		b.RemovePresence(ctx, "c1", "s1")
		if list, _ = b.Presence(ctx, "c1"); len(list) != 0 {
			t.Fatalf("after remove %+v", list)
		}
	})
}

func TestBusOrder(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		got := make(chan string, 100)
		bus := b.NewBus(ctx, slog.Default())
		defer bus.Close()
		bus.Subscribe(ctx, b.Channel("c1"), func(m []byte) {
			if m == nil {
				return
			}
			origin, updates, ok := Updates(m)
			if !ok || string(origin) != "node-a" {
				t.Errorf("not an update message from node-a: %q", m)
				return
			}
			for _, u := range strings.Split(string(updates), "\n") {
				got <- u
			}
		})
		for i := int64(1); i <= 20; i++ {
			e.edit("A", i-1, "", fmt.Sprintf("/k%d", i))
		}
		for i := 1; i <= 20; i++ {
			select {
			case m := <-got:
				if !strings.Contains(m, fmt.Sprintf(`"rev":%d,`, i)) {
					t.Fatalf("message %d: %s", i, m)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("message %d not delivered", i)
			}
		}
	})
}

// A Redis restart (its run id changes; simulated here by rewriting the run
// id the buffer recorded) stops all edits until a reopen starts a new epoch
// that keeps what Redis still holds, with no rev reused in the old epoch.
func TestRedisRestartStartsANewEpoch(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		want(t, e.edit("A", 0, "x1", "/a"), Accepted, 1)
		want(t, e.edit("A", 1, "x2", "/b"), Accepted, 2)
		if _, err := b.Flushed(ctx, "c1", 1); err != nil {
			t.Fatal(err)
		}
		// The script asks the run id when LASTSAVE is not what its last
		// check saw (a restarted server's is its start time) or that check
		// is over a second old; a restart changes the first at once.
		meta := b.keys("c1").meta
		b.rdb.HSet(ctx, meta, "run", "an-earlier-run", "saved", "1")
		want(t, e.edit("A", 2, "x3", "/c"), Restarted, 2)
		h, err := b.Open(ctx, "w1", "c1", 1, "draft", noFence)
		if err != nil || !h.Created || h.Epoch == e.head.Epoch || h.Rev != 2 || h.Start != 1 {
			t.Fatalf("reopen after restart: %+v %v (old epoch %s)", h, err, e.head.Epoch)
		}
		// Old-epoch editors are refused; in the new epoch the kept batch ids
		// still deduplicate, and new edits continue after the kept rev.
		want(t, e.edit("A", 2, "x3", "/c"), EpochLost, 2)
		e.head = h
		want(t, e.edit("A", 2, "x2", "/b"), Duplicate, 2)
		want(t, e.edit("A", 2, "x3", "/c"), Accepted, 3)
		if again, _ := b.Open(ctx, "w1", "c1", 1, "draft", noFence); again.Created || again.Epoch != h.Epoch {
			t.Fatalf("a second open rotated again: %+v", again)
		}
	})
}

// With LASTSAVE unchanged, a check over a second old asks the run id again:
// a replica that took over may carry the LASTSAVE its master recorded.
func TestRestartCheckedAfterASecond(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		e := open(t, b)
		want(t, e.edit("A", 0, "x1", "/a"), Accepted, 1)
		meta := b.keys("c1").meta
		checked, err := b.rdb.HGet(ctx, meta, "checked").Int64()
		if err != nil {
			t.Fatalf("the edit recorded no check: %v", err)
		}
		b.rdb.HSet(ctx, meta, "run", "an-earlier-run", "checked", checked-1500)
		want(t, e.edit("A", 1, "x2", "/b"), Restarted, 1)
	})
}

// A new epoch accepts nothing until the durable store's epoch moved to it: a
// failed fence leaves it refusing edits, and the next open fences it.
func TestNewEpochIsFencedBeforeEdits(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		var fenced []string
		failing := func(context.Context, string) error { return errors.New("database down") }
		if _, err := b.Open(ctx, "w1", "c1", 0, "draft", failing); err == nil {
			t.Fatal("open succeeded without its fence")
		}
		h, _, _ := b.Head(ctx, "c1")
		e := &editor{t: t, b: b, c: "c1", head: h}
		want(t, e.edit("A", 0, "", "/a"), Unfenced, 0)
		h, err := b.Open(ctx, "w1", "c1", 0, "draft", func(_ context.Context, epoch string) error {
			fenced = append(fenced, epoch)
			return nil
		})
		if err != nil || len(fenced) != 1 || fenced[0] != h.Epoch || !h.Created && h.Epoch != e.head.Epoch {
			t.Fatalf("second open: %+v %v fenced %v", h, err, fenced)
		}
		e.head = h
		want(t, e.edit("A", 0, "", "/a"), Accepted, 1)
		// A fenced epoch is not fenced again.
		if _, err := b.Open(ctx, "w1", "c1", 0, "draft", failing); err != nil {
			t.Fatalf("reopen of a fenced epoch called the fence: %v", err)
		}
	})
}

// An archive whose status write never reached Redis is repaired by the next
// open, which hears the store's status.
func TestOpenRepairsArchivedStatus(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		want(t, e.edit("A", 0, "", "/a"), Accepted, 1)
		if _, err := b.Open(context.Background(), "w1", "c1", 0, "archived", noFence); err != nil {
			t.Fatal(err)
		}
		want(t, e.edit("A", 1, "", "/b"), Archived, 1)
	})
}

// A client library's retry of an edit call that already ran (its reply was
// lost with a stalled link) is the same edit: applied once, and reported to
// the caller as accepted, not duplicate.
func TestRetriedCallAppliesOnce(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		batch := Batch{Workspace: "w1", Campaign: "c1", Epoch: e.head.Epoch, Base: 0, Session: "A", User: "u", Keys: []string{"/a"}, Writes: []bool{true}}
		batch.Prefix, batch.Suffix = protocol.Update{Campaign: "c1", Ops: []byte(`[]`), By: protocol.Author{}, At: time.Now()}.Frame()
		once := func(nonce string) (Result, error) {
			res, err := b.applyOnce(context.Background(), []Batch{batch}, nonce, []string{"k1"})
			if err != nil {
				return Result{}, err
			}
			return res[0], nil
		}
		res, err := once("n1")
		if err != nil || res.Outcome != Accepted || res.Rev != 1 {
			t.Fatalf("first run: %+v %v", res, err)
		}
		res, err = once("n1")
		if err != nil || res.Outcome != Accepted || res.Rev != 1 {
			t.Fatalf("the retried run: %+v %v", res, err)
		}
		if h, _, _ := b.Head(context.Background(), "c1"); h.Rev != 1 {
			t.Fatalf("applied twice: rev %d", h.Rev)
		}
		// Another call with the same dedup key (a client's resend) is a duplicate.
		if res, _ := once("n2"); res.Outcome != Duplicate || res.Rev != 1 {
			t.Fatalf("resend: %+v", res)
		}
	})
}

// The log is read a page at a time, whole and in order.
func TestLogReadsInPages(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		const n = 2*logPage + 17
		for i := 0; i < n; i++ {
			want(t, e.edit("A", int64(i), "", "/a"), Accepted, int64(i+1))
		}
		all, err := b.Log(context.Background(), "c1", 0, -1)
		if err != nil || len(all) != n {
			t.Fatalf("log: %d entries, %v", len(all), err)
		}
		for i, en := range all {
			if en.Rev != int64(i+1) {
				t.Fatalf("entry %d has rev %d", i, en.Rev)
			}
		}
		part, _ := b.Log(context.Background(), "c1", 500, 1500)
		if len(part) != 1000 || part[0].Rev != 501 || part[999].Rev != 1500 {
			t.Fatalf("range: %d entries", len(part))
		}
		d, err := b.Build(context.Background(), nil, func(context.Context) (*campaign.Campaign, error) {
			return &campaign.Campaign{ID: "c1", Draft: []byte(`{}`)}, nil
		})
		if err != nil || d.Rev != n || d.Epoch != e.head.Epoch {
			t.Fatalf("build over pages: %+v %v", d, err)
		}
	})
}

// Opening and staging are atomic steps: many tabs of one user opening and
// staging at once keep one open rev, the first one recorded.
func TestStagingKeepsTheOpenRev(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		if _, err := b.OpenEditor(ctx, "c1", "ann", "/messages/email", 3); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				b.Stage(ctx, "c1", "ann", "/messages/email", json.RawMessage(`{"subject":"x"}`), int64(10+i))
			}()
			go func() { defer wg.Done(); b.OpenEditor(ctx, "c1", "ann", "/messages/email", int64(50+i)) }()
		}
		wg.Wait()
		s, err := b.StagedValue(ctx, "c1", "ann", "/messages/email")
		if err != nil || s.OpenRev != 3 || string(s.Value) != `{"subject":"x"}` {
			t.Fatalf("staged %+v %v", s, err)
		}
		// Staging before any open records the stage's rev as the open rev.
		b.Stage(ctx, "c1", "bob", "/messages/email", json.RawMessage(`1`), 7)
		if s, _ := b.OpenEditor(ctx, "c1", "bob", "/messages/email", 9); s.OpenRev != 7 || string(s.Value) != "1" {
			t.Fatalf("stage then open: %+v", s)
		}
		b.Unstage(ctx, "c1", "bob", "/messages/email")
		if s, _ := b.StagedValue(ctx, "c1", "bob", "/messages/email"); s.OpenRev != 0 || s.Value != nil {
			t.Fatalf("after unstage: %+v", s)
		}
	})
}

// Several sessions' batches in one script call are judged one after the
// other, exactly as if they had come in that order one by one.
func TestGroupCommitIsBatchByBatch(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		mk := func(sess, id string, base int64, keys ...string) Batch {
			batch := Batch{Workspace: "w1", Campaign: "c1", Epoch: e.head.Epoch, Base: base, Session: sess, User: "u-" + sess, ID: id}
			batch.Prefix, batch.Suffix = protocol.Update{Campaign: "c1", Ops: []byte(`[]`), By: protocol.Author{}, At: time.Now()}.Frame()
			for _, k := range keys {
				batch.Keys = append(batch.Keys, k)
				batch.Writes = append(batch.Writes, true)
			}
			return batch
		}
		ctx := context.Background()
		published := make(chan []byte, 4)
		bus := b.NewBus(ctx, slog.Default())
		defer bus.Close()
		if err := bus.Subscribe(ctx, b.Channel("c1"), func(m []byte) {
			if m != nil {
				published <- bytes.Clone(m)
			}
		}); err != nil {
			t.Fatal(err)
		}
		first := mk("A", "a1", 0, "/a")
		first.Origin = "node-7"
		res, err := b.ApplyMany(context.Background(), []Batch{
			first,
			mk("B", "b1", 0, "/a/x"), // under A's write, same base: A came first
			mk("C", "c1", 0, "/c"),
			mk("C", "c1", 0, "/c"), // the same batch id again in the call
			mk("D", "", 5, "/d"),   // base ahead
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			o   Outcome
			rev int64
		}{{Accepted, 1}, {Conflict, 1}, {Accepted, 2}, {Duplicate, 2}, {Ahead, 2}}
		for i, w := range want {
			if res[i].Outcome != w.o || res[i].Rev != w.rev {
				t.Fatalf("batch %d: %+v, want %v at %d (all: %+v)", i, res[i], w.o, w.rev, res)
			}
		}
		if len(res[1].Conflicts) != 1 || res[1].Conflicts[0] != "/a/x" {
			t.Fatalf("conflicts %v", res[1].Conflicts)
		}
		log, _ := b.Log(context.Background(), "c1", 0, -1)
		if len(log) != 2 {
			t.Fatalf("log holds %d entries", len(log))
		}
		// The call's accepted entries went out as one message, tagged.
		select {
		case m := <-published:
			origin, updates, ok := Updates(m)
			if want := string(log[0].Msg) + "\n" + string(log[1].Msg); !ok || string(origin) != "node-7" || string(updates) != want {
				t.Fatalf("published %q, want node-7's %q", m, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("nothing published")
		}
		select {
		case m := <-published:
			t.Fatalf("a second message for one call: %q", m)
		case <-time.After(100 * time.Millisecond):
		}
		// A refusal of the buffer answers every batch.
		stale := mk("A", "", 2, "/z")
		stale.Epoch = "old"
		res, _ = b.ApplyMany(context.Background(), []Batch{stale, stale})
		if res[0].Outcome != EpochLost || res[1].Outcome != EpochLost {
			t.Fatalf("epoch refusal: %+v", res)
		}
	})
}

// A flush that trims more batch ids than Lua can unpack at once (a busy
// campaign between two autosaves), and a batch touching that many paths,
// both work: the scripts work in chunks.
func TestScriptsBeyondUnpackLimit(t *testing.T) {
	forEachRedis(t, Options{Keep: 10}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		const n = 9000
		batches := make([]Batch, 0, 100)
		for i := 0; i < n; i++ {
			batch := Batch{Workspace: "w1", Campaign: "c1", Epoch: e.head.Epoch, Base: int64(i), Session: "A", User: "u", ID: fmt.Sprint("id", i),
				Keys: []string{"/a"}, Writes: []bool{true}}
			batch.Prefix, batch.Suffix = protocol.Update{Campaign: "c1", Ops: []byte(`[]`), By: protocol.Author{}, At: time.Now()}.Frame()
			batches = append(batches, batch)
			if len(batches) == cap(batches) {
				if _, err := b.ApplyMany(context.Background(), batches); err != nil {
					t.Fatal(err)
				}
				batches = batches[:0]
			}
		}
		h, err := b.Flushed(context.Background(), "c1", n)
		if err != nil || h.Flushed != n {
			t.Fatalf("flush of %d entries: %+v %v", n, h, err)
		}
		wide := Batch{Workspace: "w1", Campaign: "c1", Epoch: e.head.Epoch, Base: n, Session: "A", User: "u"}
		wide.Prefix, wide.Suffix = protocol.Update{Campaign: "c1", Ops: []byte(`[]`), By: protocol.Author{}, At: time.Now()}.Frame()
		for i := 0; i < 5000; i++ {
			wide.Keys = append(wide.Keys, fmt.Sprintf("/w/k%d", i))
			wide.Writes = append(wide.Writes, true)
		}
		if res, err := b.Apply(context.Background(), wide); err != nil || res.Outcome != Accepted {
			t.Fatalf("a batch of 5,000 paths: %+v %v", res, err)
		}
	})
}

// Every key of a campaign carries its hash tag, so that the edit script's
// keys share one slot: proven on the Redis Cluster backend by asking the
// servers where each key they hold lives.
func TestCampaignKeysShareOneSlot(t *testing.T) {
	ran := false
	for _, be := range testenv.RedisBackends(t) {
		if !be.IsCluster() {
			continue
		}
		ran = true
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			rdb := be.Client(t).(*redis.ClusterClient)
			b := New(rdb, Options{Prefix: "t" + randHex()})
			e := open(t, b)
			want(t, e.edit("A", 0, "a1", "/a"), Accepted, 1)
			want(t, e.edit("B", 1, "", "/b"), Accepted, 2)
			if err := b.Stage(ctx, "c1", "ann", "/messages/email", json.RawMessage(`{"subject":"x"}`), 2); err != nil {
				t.Fatal(err)
			}
			if err := b.SetPresence(ctx, "c1", Presence{User: "u1", Name: "Ann", Session: "s1", Tab: "details"}); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Lease(ctx, "c1", "tok", time.Minute); !ok || err != nil {
				t.Fatalf("lease: %v %v", ok, err)
			}
			var mu sync.Mutex
			var keys []string
			if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
				iter := c.Scan(ctx, 0, b.opts.Prefix+":*", 1000).Iterator()
				for iter.Next(ctx) {
					mu.Lock()
					keys = append(keys, iter.Val())
					mu.Unlock()
				}
				return iter.Err()
			}); err != nil {
				t.Fatal(err)
			}
			slots := map[int64][]string{}
			for _, k := range keys {
				if k == b.DirtyKey() {
					continue // the node-wide set of dirty campaigns: a slot of its own
				}
				slot, err := rdb.ClusterKeySlot(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				slots[slot] = append(slots[slot], k)
			}
			if len(slots) != 1 || len(keys) < 5 {
				t.Fatalf("campaign c1's %d keys are in %d slots: %v", len(keys), len(slots), slots)
			}
			for _, ks := range slots {
				t.Logf("%d keys of campaign c1, all in one slot: %v", len(ks), ks)
			}
		})
	}
	if !ran {
		t.Skip("no Redis Cluster: set " + testenv.ClusterVar + "=redis-cluster://h1:p1,h2:p2,h3:p3 to prove the hash tags (bash .ci/run starts one)")
	}
}

// TestPipelineAcrossCampaigns: concurrent calls of many campaigns share
// pipelines, every call gets its own answer, revs stay contiguous per
// campaign, each campaign is marked dirty, and a Redis that lost the
// script (SCRIPT FLUSH) mid-way still gets every call.
func TestPipelineAcrossCampaigns(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		ctx := context.Background()
		const campaigns, writers, edits = 20, 5, 20
		heads := make([]Head, campaigns)
		for i := range heads {
			h, err := b.Open(ctx, "w1", fmt.Sprint("c", i), 0, "draft", noFence)
			if err != nil {
				t.Fatal(err)
			}
			heads[i] = h
		}
		var wg sync.WaitGroup
		errs := make(chan error, campaigns*writers)
		revs := make([][]int64, campaigns*writers)
		for c := 0; c < campaigns; c++ {
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(c, w int) {
					defer wg.Done()
					id := fmt.Sprint("c", c)
					for i := 0; i < edits; i++ {
						if c == 0 && w == 0 && i == edits/2 {
							b.rdb.ScriptFlush(ctx)
						}
						key := fmt.Sprintf("/w%d", w)
						batch := Batch{Workspace: "w1", Campaign: id, Epoch: heads[c].Epoch, Base: 0, Session: fmt.Sprint("s", w), User: fmt.Sprint("u", w),
							ID: fmt.Sprint("e", i), Keys: []string{key}, Writes: []bool{true}}
						batch.Prefix, batch.Suffix = protocol.Update{Campaign: id, Ops: []byte(`[]`), At: time.Now()}.Frame()
						r, err := b.Apply(ctx, batch)
						if err != nil || r.Outcome != Accepted {
							errs <- fmt.Errorf("%s writer %d edit %d: %+v %v", id, w, i, r, err)
							return
						}
						revs[c*writers+w] = append(revs[c*writers+w], r.Rev)
					}
				}(c, w)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for c := 0; c < campaigns; c++ {
			seen := map[int64]bool{}
			for w := 0; w < writers; w++ {
				for _, r := range revs[c*writers+w] {
					if seen[r] {
						t.Fatalf("campaign %d: rev %d given twice", c, r)
					}
					seen[r] = true
				}
			}
			for r := int64(1); r <= writers*edits; r++ {
				if !seen[r] {
					t.Fatalf("campaign %d: rev %d missing", c, r)
				}
			}
			if _, err := b.rdb.ZScore(ctx, b.DirtyKey(), fmt.Sprint("c", c)).Result(); err != nil {
				t.Fatalf("campaign %d not marked dirty: %v", c, err)
			}
		}
		b.pipe.mu.Lock()
		sent, left, running := b.pipe.sent, len(b.pipe.queue), b.pipe.running
		b.pipe.mu.Unlock()
		if calls := campaigns * writers * edits; sent >= calls || left != 0 || running != 0 {
			t.Fatalf("%d calls in %d pipelines, %d left queued, %d still running", calls, sent, left, running)
		}
		t.Logf("%d calls in %d pipelines", campaigns*writers*edits, sent)
	})
}

// TestPipelineWaitHonoursContext: a call queued behind pipelines in flight
// leaves on its context and takes its place out of the queue; queued calls
// run once a pipeline ends and hands on its lead.
func TestPipelineWaitHonoursContext(t *testing.T) {
	forEachRedis(t, Options{}, func(t *testing.T, b *Buffer) {
		e := open(t, b)
		batch := func(sess string) Batch {
			bt := Batch{Workspace: "w1", Campaign: "c1", Epoch: e.head.Epoch, Session: sess, User: sess, Keys: []string{"/" + sess}, Writes: []bool{true}}
			bt.Prefix, bt.Suffix = protocol.Update{Campaign: "c1", Ops: []byte(`[]`), At: time.Now()}.Frame()
			return bt
		}
		b.pipe.mu.Lock()
		b.pipe.running = maxInFlight // as if that many were out, and stuck
		b.pipe.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := b.Apply(ctx, batch("A")); err == nil || time.Since(start) > 2*time.Second {
			t.Fatalf("a call behind stuck pipelines answered %v after %v", err, time.Since(start))
		}
		b.pipe.mu.Lock()
		if len(b.pipe.queue) != 0 {
			t.Fatalf("the abandoned call stayed queued: %d", len(b.pipe.queue))
		}
		b.pipe.mu.Unlock()

		results := make(chan error, 2)
		for _, s := range []string{"B", "C"} {
			go func() {
				r, err := b.Apply(context.Background(), batch(s))
				if err == nil && r.Outcome != Accepted {
					err = fmt.Errorf("%+v", r)
				}
				results <- err
			}()
		}
		for queued := 0; queued < 2; {
			time.Sleep(5 * time.Millisecond)
			b.pipe.mu.Lock()
			queued = len(b.pipe.queue)
			b.pipe.mu.Unlock()
		}
		b.pipe.mu.Lock()
		b.pipe.passLocked() // one stuck pipeline ends
		b.pipe.mu.Unlock()
		for i := 0; i < 2; i++ {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
		b.pipe.mu.Lock()
		defer b.pipe.mu.Unlock()
		if b.pipe.running != maxInFlight-1 || len(b.pipe.queue) != 0 {
			t.Fatalf("after the queue ran: %d running, %d queued", b.pipe.running, len(b.pipe.queue))
		}
	})
}
