package draft

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lease value is "expiry-ms token": the expiry is checked against the
// caller's clock, not only left to Redis's TTL, so that it also expires on
// servers that do not expire keys by wall time (the in-process one); the
// TTL still cleans up after dead nodes on real Redis.
var (
	leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local exp = tonumber(string.match(v, '^(%d+) '))
  if exp and exp > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
return 1`)
	unleaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.match(v, ' (.*)$') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// Lease takes the campaign's flush lease for ttl; false when another flusher
// holds it. A flusher that dies keeps it only until ttl passes.
func (b *Buffer) Lease(ctx context.Context, campaign, token string, ttl time.Duration) (bool, error) {
	now := time.Now()
	ok, err := leaseScript.Run(ctx, b.rdb, []string{b.keys(campaign).lease},
		now.UnixMilli(), now.Add(ttl).UnixMilli(), token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, unavailable("lease "+campaign, err)
	}
	return ok == 1, nil
}

// Unlease releases the lease if token still holds it.
func (b *Buffer) Unlease(ctx context.Context, campaign, token string) error {
	return unavailable("release lease of "+campaign, unleaseScript.Run(ctx, b.rdb, []string{b.keys(campaign).lease}, token).Err())
}

// Dirty returns up to limit campaigns whose oldest unflushed edit is older
// than before, oldest first.
func (b *Buffer) Dirty(ctx context.Context, before time.Time, limit int64) ([]string, error) {
	ids, err := b.rdb.ZRangeByScore(ctx, b.DirtyKey(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(before.UnixMilli(), 10), Count: limit}).Result()
	return ids, unavailable("read dirty campaigns", err)
}

// OldestDirty returns when the oldest unflushed edit of any campaign was
// made; ok is false when every draft is saved.
func (b *Buffer) OldestDirty(ctx context.Context) (at time.Time, ok bool, err error) {
	zs, err := b.rdb.ZRangeWithScores(ctx, b.DirtyKey(), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, unavailable("read dirty campaigns", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}

// MarkClean takes the campaign off the dirty set after a flush, and puts it
// back, scored by its oldest unflushed edit, if edits arrived meanwhile.
// Removing first and checking after leaves no window in which an edit's own
// mark could be lost.
func (b *Buffer) MarkClean(ctx context.Context, campaign string) error {
	if err := b.rdb.ZRem(ctx, b.DirtyKey(), campaign).Err(); err != nil {
		return unavailable("mark "+campaign+" clean", err)
	}
	h, ok, err := b.Head(ctx, campaign)
	if err != nil || !ok || h.Rev <= h.Flushed {
		return err
	}
	at := time.Now()
	if next, err := b.Log(ctx, campaign, h.Flushed, h.Flushed+1); err == nil && len(next) == 1 {
		at = next[0].At
	}
	return unavailable("mark "+campaign+" dirty", markDirty(ctx, b.rdb, b.DirtyKey(), at, campaign).Err())
}

// markDirty puts campaigns on the dirty set at, unless they are on it
// already: the set scores each by its oldest unflushed edit (ms). The
// score goes out as an integer: go-redis formats a float score with the
// shortest-representation algorithm, whose frames grow the caller's stack,
// and the edit pipeline marks on a session's reader once per pipeline.
func markDirty(ctx context.Context, c doer, key string, at time.Time, campaigns ...string) *redis.Cmd {
	args := make([]any, 0, 3+2*len(campaigns))
	args = append(args, "zadd", key, "nx")
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	for _, id := range campaigns {
		args = append(args, ms, id)
	}
	return c.Do(ctx, args...)
}

// doer is a client or a pipeline.
type doer interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// Forget drops a campaign from the dirty set (its buffer is gone).
func (b *Buffer) Forget(ctx context.Context, campaign string) error {
	return unavailable("forget "+campaign, b.rdb.ZRem(ctx, b.DirtyKey(), campaign).Err())
}

// StagedTTL is how long a full-screen editor's staged value survives
// without being touched.
const StagedTTL = 14 * 24 * time.Hour

// Staged is a value a user staged in a full-screen editor, with the rev of
// the draft when the editor was opened (the base of its edit at Done).
type Staged struct {
	Value   json.RawMessage `json:"value,omitempty"`
	OpenRev int64           `json:"rev"`
}

func (b *Buffer) stagedKey(campaign, user string) string {
	return b.keys(campaign).staged + ":" + user
}

// A staged value lives in two fields of the user's hash: "v:"+path holds the
// value and "r:"+path the rev the editor opened at, so that opening and
// staging are single atomic steps (two tabs of one user cannot lose the
// open rev between a read and a write). The field path alone holds the
// format before that (a JSON Staged), still read.

// OpenEditor records that the user opened the editor of path at rev (kept
// if already open) and returns what the user staged there before.
func (b *Buffer) OpenEditor(ctx context.Context, campaign, user, path string, rev int64) (Staged, error) {
	k := b.stagedKey(campaign, user)
	var got *redis.SliceCmd
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, k, "r:"+path, rev)
		p.Expire(ctx, k, StagedTTL)
		got = p.HMGet(ctx, k, "v:"+path, "r:"+path, path)
		return nil
	})
	if err != nil {
		return Staged{}, unavailable("open editor", err)
	}
	return stagedFrom(got.Val()), nil
}

// Stage keeps the user's value for path: never broadcast, never flushed. The
// open rev is the one the editor opened at, or rev when it was never opened.
func (b *Buffer) Stage(ctx context.Context, campaign, user, path string, value json.RawMessage, rev int64) error {
	k := b.stagedKey(campaign, user)
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, k, "r:"+path, rev)
		p.HSet(ctx, k, "v:"+path, []byte(value))
		p.Expire(ctx, k, StagedTTL)
		return nil
	})
	return unavailable("stage", err)
}

// StagedValue returns what the user staged for path (zero when nothing).
func (b *Buffer) StagedValue(ctx context.Context, campaign, user, path string) (Staged, error) {
	got, err := b.rdb.HMGet(ctx, b.stagedKey(campaign, user), "v:"+path, "r:"+path, path).Result()
	if err != nil {
		return Staged{}, unavailable("read staged value", err)
	}
	return stagedFrom(got), nil
}

// stagedFrom reads the fields v:path, r:path and path (the older format).
func stagedFrom(fields []any) Staged {
	str := func(v any) string { s, _ := v.(string); return s }
	var s Staged
	if old := str(fields[2]); old != "" {
		json.Unmarshal([]byte(old), &s)
	}
	if v := str(fields[0]); v != "" {
		s.Value = json.RawMessage(v)
	}
	if r := str(fields[1]); r != "" {
		s.OpenRev, _ = strconv.ParseInt(r, 10, 64)
	}
	return s
}

// Unstage drops the user's staged value and open marker for path.
func (b *Buffer) Unstage(ctx context.Context, campaign, user, path string) error {
	return unavailable("unstage", b.rdb.HDel(ctx, b.stagedKey(campaign, user), "v:"+path, "r:"+path, path).Err())
}
