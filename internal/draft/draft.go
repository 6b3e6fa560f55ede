// Package draft keeps campaigns' working drafts in Redis: an append-only log
// of accepted edit batches per campaign, the per-path revisions that decide
// first-writer-wins, presence, and the pub/sub channel that carries updates
// to every node. The document itself is never stored whole in Redis: the
// saved draft in the SQL store plus the log after its rev is the draft.
//
// Every key of one campaign shares the hash tag {<campaign id>}, so a Redis
// Cluster keeps them in one slot and the Lua scripts stay atomic there. The
// only cross-campaign key is the dirty set that autosave polls, written with
// plain commands beside the scripts, never from inside them.
package draft

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
)

var (
	//go:embed edit.lua
	editLua string
	//go:embed open.lua
	openLua string
	//go:embed flushed.lua
	flushedLua string
	//go:embed presence.lua
	presenceLua string
	//go:embed confirm.lua
	confirmLua string

	editScript     = redis.NewScript(editLua)
	openScript     = redis.NewScript(openLua)
	flushedScript  = redis.NewScript(flushedLua)
	presenceScript = redis.NewScript(strings.ReplaceAll(presenceLua, "PRESENCE_CHANGED", protocol.PresenceChanged))
	confirmScript  = redis.NewScript(confirmLua)
)

// Options tune a Buffer.
type Options struct {
	// Prefix starts every key and channel ("collab" by default); tests use a
	// unique one each.
	Prefix string
	// MaxLog bounds a campaign's unflushed log; edits beyond it are refused
	// as unavailable until autosave catches up.
	MaxLog int
	// Keep is how many recent log entries survive trimming, so that a
	// reconnecting session can resume with `since` instead of reloading.
	Keep int
	// PresenceTTL is how long a presence entry lives without a heartbeat.
	PresenceTTL time.Duration
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "collab"
	}
	if o.MaxLog <= 0 {
		o.MaxLog = 100_000
	}
	if o.Keep <= 0 {
		o.Keep = 1000
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = 30 * time.Second
	}
}

// Buffer is the Redis side of drafts.
type Buffer struct {
	rdb  redis.UniversalClient
	opts Options
	pipe *pipeline // the node's edit calls, every campaign's, in pipelines
}

// New returns a Buffer on rdb (a standalone or cluster client).
func New(rdb redis.UniversalClient, opts Options) *Buffer {
	opts.defaults()
	b := &Buffer{rdb: rdb, opts: opts}
	b.pipe = &pipeline{rdb: rdb, dirtyKey: b.DirtyKey()}
	return b
}

// Options returns the options in force.
func (b *Buffer) Options() Options { return b.opts }

type keys struct{ meta, paths, log, ids, idlog, presence, presenceData, lease, staged, channel string }

func (b *Buffer) keys(campaign string) keys {
	p := b.opts.Prefix + ":{" + campaign + "}:"
	return keys{meta: p + "meta", paths: p + "paths", log: p + "log", ids: p + "ids", idlog: p + "idlog",
		presence: p + "presence", presenceData: p + "presence:data", lease: p + "lease",
		staged: p + "staged", channel: p + "events"}
}

// DirtyKey is the sorted set of campaigns with unflushed edits, scored by
// the time of their oldest unflushed edit (ms).
func (b *Buffer) DirtyKey() string { return b.opts.Prefix + ":dirty" }

// Channel is the pub/sub channel of a campaign's events.
func (b *Buffer) Channel(campaign string) string { return b.keys(campaign).channel }

// Head is where a campaign's draft log stands.
type Head struct {
	Rev     int64  // newest accepted rev
	Epoch   string // changes whenever the Redis-side history was lost
	Floor   int64  // the log holds the revs after Floor
	Flushed int64  // the durable store holds the draft up to this rev
	Status  string
	// Workspace is the campaign's workspace, recorded at open (read by
	// Head only).
	Workspace string
	Created   bool // this call started a new epoch
	// Start is the saved rev when the epoch began: every rev at or below it
	// was durable then, in any epoch.
	Start int64
}

// Open makes sure the campaign's buffer exists and is not behind savedRev,
// the rev of the draft the durable store holds. A buffer that is missing or
// behind (Redis lost writes) starts a new epoch at savedRev.
//
// A new epoch accepts no edit until fence has moved the durable store's
// epoch to it (store.FenceEpoch): only then is it confirmed here. An error
// from fence is returned as it is; a conflict means the store moved since
// the caller read it, and the caller reads it again and reopens.
func (b *Buffer) Open(ctx context.Context, workspace, campaign string, savedRev int64, status string, fence func(ctx context.Context, epoch string) error) (Head, error) {
	k := b.keys(campaign)
	res, err := openScript.Run(ctx, b.rdb, []string{k.meta, k.paths, k.log, k.ids, k.idlog},
		savedRev, randid.New(""), workspace, status).StringSlice()
	if err != nil {
		return Head{}, unavailable("open draft of "+campaign, err)
	}
	h := Head{Rev: atoi(res[0]), Epoch: res[1], Floor: atoi(res[2]), Flushed: atoi(res[3]), Status: res[4], Created: res[5] == "1", Start: atoi(res[6])}
	if res[7] != "1" {
		return h, nil
	}
	if err := fence(ctx, h.Epoch); err != nil {
		return Head{}, fmt.Errorf("fence epoch %s of %s: %w", h.Epoch, campaign, err)
	}
	ok, err := confirmScript.Run(ctx, b.rdb, []string{k.meta}, h.Epoch).Int()
	if err != nil {
		return Head{}, unavailable("confirm epoch of "+campaign, err)
	}
	if ok != 1 {
		return Head{}, errcode.New(errcode.Conflict, "campaign %s: the draft epoch moved again while it opened", campaign)
	}
	return h, nil
}

// Head reads where the campaign's log stands; ok is false when the buffer
// does not exist (never opened, or lost).
func (b *Buffer) Head(ctx context.Context, campaign string) (h Head, ok bool, err error) {
	res, err := b.rdb.HMGet(ctx, b.keys(campaign).meta, "rev", "epoch", "floor", "flushed", "status", "ws").Result()
	if err != nil {
		return Head{}, false, unavailable("read draft head of "+campaign, err)
	}
	if res[0] == nil {
		return Head{}, false, nil
	}
	str := func(v any) string { s, _ := v.(string); return s }
	return Head{Rev: atoi(str(res[0])), Epoch: str(res[1]), Floor: atoi(str(res[2])), Flushed: atoi(str(res[3])), Status: str(res[4]), Workspace: str(res[5])}, true, nil
}

// SetStatus records a lifecycle change in the buffer (the edit script
// refuses edits to archived campaigns) and announces it to every node.
func (b *Buffer) SetStatus(ctx context.Context, campaign, status string) error {
	k := b.keys(campaign)
	msg := protocol.Encode(nil, protocol.Status{Campaign: campaign, Status: status})
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		// On a missing buffer this leaves a meta without rev, which Open
		// still treats as missing.
		p.HSet(ctx, k.meta, "status", status)
		publishScript.Eval(ctx, p, []string{k.meta}, k.channel, msg) // from the slot's node: see publishScript
		return nil
	})
	return unavailable("set status of "+campaign, err)
}

// Publish sends an event (already encoded) to every node's sessions on the
// campaign.
func (b *Buffer) Publish(ctx context.Context, campaign string, msg []byte) error {
	k := b.keys(campaign)
	return unavailable("publish to "+campaign, publishScript.Run(ctx, b.rdb, []string{k.meta}, k.channel, msg).Err())
}

// FeedChannel is the pub/sub channel of a workspace's campaign list.
func (b *Buffer) FeedChannel(workspace string) string {
	return b.opts.Prefix + ":ws:" + workspace + ":campaigns"
}

// PublishFeed sends a campaign-list event of the workspace to every node.
// It is published from the campaign's slot, as its other events are, so
// one campaign's list events keep their order.
func (b *Buffer) PublishFeed(ctx context.Context, workspace, campaign string, msg []byte) error {
	k := b.keys(campaign)
	return unavailable("announce "+campaign+" to its workspace", publishScript.Run(ctx, b.rdb, []string{k.meta}, b.FeedChannel(workspace), msg).Err())
}

// publishScript publishes from the server that holds the campaign's slot.
// On a Redis Cluster a plain PUBLISH goes to any node and reaches the
// others over the cluster bus, so two events published one after the other
// (a save, then a publish) could arrive out of order, and out of order with
// the updates the edit script publishes from the slot's node. A script
// keyed by the campaign runs where the edit script runs: one origin, one
// order. On a single server it is a plain PUBLISH.
var publishScript = redis.NewScript(`return redis.call('PUBLISH', ARGV[1], ARGV[2])`)

// Entry is one accepted batch in the log: its rev and the update message
// exactly as sessions receive it.
type Entry struct {
	Rev int64
	Msg []byte
	At  time.Time
}

// logPage bounds one log read: a buffer may hold up to Options.MaxLog
// entries, which in one reply would hold a Redis connection (and this
// node's memory) for as long as it takes to move them.
const logPage = 1000

// Log returns the entries with after < rev <= upto (upto < 0: to the end),
// read a page at a time.
func (b *Buffer) Log(ctx context.Context, campaign string, after, upto int64) ([]Entry, error) {
	end := "+"
	if upto >= 0 {
		if upto <= after {
			return nil, nil
		}
		end = strconv.FormatInt(upto, 10) + "-1"
	}
	var out []Entry
	for {
		msgs, err := b.rdb.XRangeN(ctx, b.keys(campaign).log, strconv.FormatInt(after+1, 10)+"-0", end, logPage).Result()
		if err != nil {
			return nil, unavailable("read draft log of "+campaign, err)
		}
		page := entries(msgs)
		out = append(out, page...)
		if len(page) < logPage {
			return out, nil
		}
		after = page[len(page)-1].Rev
	}
}

// logAndEpoch reads the log after a rev and the epoch its revs count in.
// Each page is read with the epoch in one transaction (the keys share the
// campaign's hash slot); an epoch that changed between pages is an error the
// caller retries.
func (b *Buffer) logAndEpoch(ctx context.Context, campaign string, after int64) ([]Entry, string, error) {
	k := b.keys(campaign)
	var out []Entry
	first := ""
	for {
		var rng *redis.XMessageSliceCmd
		var epoch *redis.StringCmd
		_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			rng = p.XRangeN(ctx, k.log, strconv.FormatInt(after+1, 10)+"-0", "+", logPage)
			epoch = p.HGet(ctx, k.meta, "epoch")
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", unavailable("read draft log of "+campaign, err)
		}
		if out == nil {
			first = epoch.Val()
		} else if epoch.Val() != first {
			return nil, "", errcode.New(errcode.Unavailable, "campaign %s: the draft epoch changed while its log was read", campaign)
		}
		page := entries(rng.Val())
		out = append(out, page...)
		if len(page) < logPage {
			return out, first, nil
		}
		after = page[len(page)-1].Rev
	}
}

func entries(msgs []redis.XMessage) []Entry {
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		rev, _, _ := strings.Cut(m.ID, "-")
		u, _ := m.Values["u"].(string)
		t, _ := m.Values["t"].(string)
		out = append(out, Entry{Rev: atoi(rev), Msg: []byte(u), At: time.UnixMilli(atoi(t))})
	}
	return out
}

// Flushed records that the durable store holds the draft up to rev, and trims
// the log below it (keeping the newest Options.Keep entries).
func (b *Buffer) Flushed(ctx context.Context, campaign string, rev int64) (Head, error) {
	k := b.keys(campaign)
	for {
		res, err := flushedScript.Run(ctx, b.rdb, []string{k.meta, k.log, k.ids, k.idlog}, rev, b.opts.Keep, trimChunk).StringSlice()
		if err == nil && len(res) < 4 {
			err = errors.New("short reply")
		}
		if err != nil {
			return Head{}, unavailable("record flush of "+campaign, err)
		}
		if res[3] != "1" {
			return Head{Rev: atoi(res[0]), Flushed: atoi(res[1]), Floor: atoi(res[2])}, nil
		}
	}
}

// trimChunk bounds the log entries one call of the flushed script trims:
// a few milliseconds of Redis's time at most, during which nothing else runs.
const trimChunk = 128

// Redis returns the client, for callers that share it (health checks).
func (b *Buffer) Redis() redis.UniversalClient { return b.rdb }

// unavailable wraps a Redis failure: callers must answer "unavailable",
// never pretend an edit was accepted.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %w", op, errcode.New(errcode.Unavailable, "the draft store is unavailable"), err)
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
