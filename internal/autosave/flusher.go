// Package autosave saves Redis-buffered drafts into the durable SQL store:
// on a timer while a draft is dirty, and at once on the triggers the editor
// needs (tab switch, full-screen editor Done, manual save, the last session
// leaving, publish, shutdown). It also serves the session commands that
// revolve around saving: save, publish and the full-screen editor's
// editor.open, editor.stage, editor.done and editor.cancel.
//
// Every node runs a Flusher. One campaign is flushed by one node at a time
// under a Redis lease; the store's check on the saved version and rev is the
// fencing token that keeps a flusher whose lease expired mid-flush from ever
// writing over a newer save.
package autosave

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
	"github.com/collab-dev/collab/internal/store"
)

// Drafts is the Redis side the Flusher needs; *draft.Buffer implements it.
type Drafts interface {
	Build(ctx context.Context, saved *campaign.Campaign, load func(context.Context) (*campaign.Campaign, error)) (*draft.Draft, error)
	Head(ctx context.Context, campaign string) (draft.Head, bool, error)
	Flushed(ctx context.Context, campaign string, rev int64) (draft.Head, error)
	Publish(ctx context.Context, campaign string, msg []byte) error
	Lease(ctx context.Context, campaign, token string, ttl time.Duration) (bool, error)
	Unlease(ctx context.Context, campaign, token string) error
	Dirty(ctx context.Context, before time.Time, limit int64) ([]string, error)
	OldestDirty(ctx context.Context) (time.Time, bool, error)
	MarkClean(ctx context.Context, campaign string) error
	Forget(ctx context.Context, campaign string) error
}

// Store is the durable side the Flusher needs.
type Store interface {
	Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error)
	SaveDraft(ctx context.Context, d store.DraftSave) (int64, error)
}

// Holder is a node's own, current copy of the working drafts it serves
// (*session.Hub): a timer flush takes the draft from it instead of
// rebuilding it from the saved draft and the log, which was most of a
// flush's CPU. Held answers once the copy has delivered head, and only when
// it holds every entry above the saved rev it is given.
type Holder interface {
	Held(ctx context.Context, campaign string, above int64, head draft.Head) (draft.Held, bool)
}

// heldWait bounds how long a flush waits for a room to deliver what Redis
// holds before rebuilding instead.
const heldWait = 100 * time.Millisecond

// Options tune a Flusher.
type Options struct {
	Interval    time.Duration // flush a dirty draft this long after its oldest unsaved edit (2 s)
	LeaseTTL    time.Duration // how long a dead flusher blocks a campaign (10 s)
	Concurrency int           // at most this many campaigns flushed at once (8); see Run
	MaxBackoff  time.Duration // cap of the retry delay after a failed flush (30 s)
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
}

// Flusher saves drafts.
type Flusher struct {
	drafts Drafts
	store  Store
	opts   Options
	log    *slog.Logger
	holder Holder // nil: every flush rebuilds

	mu      sync.Mutex // guards the following fields
	retry   map[string]backoff
	healthy bool
	took    time.Duration // moving average of a timer flush's wall time
}

type backoff struct {
	next  time.Time
	delay time.Duration
}

// New returns a Flusher; Run drives its timer.
func New(drafts Drafts, st Store, opts Options, log *slog.Logger) *Flusher {
	opts.defaults()
	return &Flusher{drafts: drafts, store: st, opts: opts, log: log, retry: map[string]backoff{}, healthy: true}
}

// SetHolder has timer flushes take the drafts h holds (call before Run).
func (f *Flusher) SetHolder(h Holder) { f.holder = h }

// Result is what one flush did.
type Result struct {
	Campaign string
	Wrote    bool // false when the store already held the draft
	Version  int64
	Rev      int64
	At       time.Time
	Trigger  campaign.Trigger
	// Epoch is the epoch Rev counts in (read with the log the draft was
	// built from): after a Redis restart, revs above what Redis kept count
	// different edits in the old epoch and the new one, so clients drop the
	// edits they hold only on a save of their own epoch.
	Epoch string
}

// ErrBusy means another flusher holds the campaign's lease.
var ErrBusy = errors.New("another node is flushing this campaign")

// Save flushes a campaign at once (session.Saver): it waits for a flush
// another node is running, then saves whatever that one did not. It
// returns the saved version that holds the draft as it was when Save began.
func (f *Flusher) Save(ctx context.Context, workspace, id string, trigger campaign.Trigger) (int64, error) {
	res, err := f.Flush(ctx, id, trigger, true)
	return res.Version, err
}

// Flush saves the campaign's working draft when it holds edits the store
// does not. With wait, a lease held elsewhere is waited for (until ctx);
// without, ErrBusy is returned at once.
func (f *Flusher) Flush(ctx context.Context, id string, trigger campaign.Trigger, wait bool) (Result, error) {
	token := randid.New("")
	for {
		ok, err := f.drafts.Lease(ctx, id, token, f.opts.LeaseTTL)
		if err != nil {
			return Result{}, fmt.Errorf("flush campaign %s: %w", id, err)
		}
		if ok {
			break
		}
		if !wait {
			return Result{}, ErrBusy
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-ctx.Done():
			return Result{}, fmt.Errorf("flush campaign %s: waiting for the lease: %w", id, ctx.Err())
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := f.drafts.Unlease(ctx, id, token); err != nil {
			f.log.Warn("release flush lease", "campaign", id, "err", err)
		}
	}()
	res, err := f.flushLeased(ctx, id, trigger)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case !res.Wrote:
		result = "clean"
	}
	metrics.Flushes.WithLabelValues(string(trigger), result).Inc()
	f.mu.Lock()
	if err != nil {
		b := f.retry[id]
		b.delay = min(max(2*b.delay, 250*time.Millisecond), f.opts.MaxBackoff)
		b.next = time.Now().Add(b.delay)
		f.retry[id] = b
		f.healthy = false
	} else {
		delete(f.retry, id)
		f.healthy = true
	}
	f.mu.Unlock()
	return res, err
}

func (f *Flusher) flushLeased(ctx context.Context, id string, trigger campaign.Trigger) (Result, error) {
	head, ok, err := f.drafts.Head(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("flush campaign %s: %w", id, err)
	}
	if !ok {
		// No buffer: nothing unsaved can exist (it was never opened, or Redis
		// lost it, which the next open turns into a new epoch).
		return Result{Campaign: id}, f.drafts.Forget(ctx, id)
	}
	for attempt := 0; ; attempt++ {
		// Only the timer takes a held draft, and only on a first attempt:
		// the other triggers are rare and stay on the path that reads
		// everything from Redis, and a retry follows a refusal (another
		// flusher saved first, the epoch ended) that the log settles.
		d, doc, err := f.working(ctx, id, head, trigger == campaign.TriggerTimer && attempt == 0)
		if err != nil {
			return Result{}, fmt.Errorf("flush campaign %s: %w", id, err)
		}
		saved := d.Saved
		if d.Rev <= saved.Rev {
			if _, err := f.drafts.Flushed(ctx, id, saved.Rev); err != nil {
				return Result{}, fmt.Errorf("flush campaign %s: %w", id, err)
			}
			return Result{Campaign: id, Version: saved.Version, Rev: saved.Rev, At: saved.UpdatedAt, Trigger: trigger, Epoch: d.Epoch},
				f.drafts.MarkClean(ctx, id)
		}
		at := time.Now()
		v, err := f.store.SaveDraft(ctx, store.DraftSave{Workspace: head.Workspace, ID: id, BaseVersion: saved.Version,
			RevFrom: saved.Rev + 1, Rev: d.Rev, Epoch: d.Epoch, Doc: doc, By: d.Last, Authors: d.Authors, Trigger: trigger, At: at, RestoredFrom: d.RestoredFrom})
		if errors.Is(err, store.ErrEpochFenced) {
			// Built in an epoch that ended while this flush was on its way
			// (Redis lost history and a new epoch reuses these revs).
			f.log.Info("stale flush refused by the epoch fence; rebuilding from the current epoch", "campaign", id, "epoch", d.Epoch, "rev", d.Rev)
		}
		if errcode.Is(err, errcode.Conflict) && attempt < 3 {
			continue // another flusher saved first (an expired lease): start from its save
		}
		if err != nil {
			return Result{}, fmt.Errorf("flush campaign %s: %w", id, err)
		}
		res := Result{Campaign: id, Wrote: true, Version: v, Rev: d.Rev, At: at, Trigger: trigger, Epoch: d.Epoch}
		// The draft is durable: announce it, then let the log be trimmed.
		if err := f.drafts.Publish(ctx, id, protocol.Encode(nil, res.Message())); err != nil {
			f.log.Warn("announce save", "campaign", id, "err", err)
		}
		if _, err := f.drafts.Flushed(ctx, id, d.Rev); err != nil {
			return res, fmt.Errorf("flush campaign %s: saved, but recording it: %w", id, err)
		}
		return res, f.drafts.MarkClean(ctx, id)
	}
}

// working returns the campaign's working draft and its document encoded:
// with held, the holder's when it has delivered head and holds every entry
// above the saved rev; else rebuilt from the saved draft and the log.
// Either way a saved draft that cannot be read is never written over.
func (f *Flusher) working(ctx context.Context, id string, head draft.Head, held bool) (*draft.Draft, []byte, error) {
	load := func(ctx context.Context) (*campaign.Campaign, error) {
		return f.store.Campaign(ctx, head.Workspace, id)
	}
	var saved *campaign.Campaign
	if held && f.holder != nil {
		c, err := load(ctx)
		if err != nil {
			return nil, nil, err
		}
		if head.Rev > c.Rev {
			hctx, cancel := context.WithTimeout(ctx, heldWait)
			h, ok := f.holder.Held(hctx, id, c.Rev, head)
			cancel()
			if ok {
				if err := campaign.CheckDocument(c.Draft); err != nil {
					return nil, nil, fmt.Errorf("campaign %s: saved draft: %w", id, err)
				}
				metrics.FlushSources.WithLabelValues("room").Inc()
				return &draft.Draft{Saved: c, Rev: h.Rev, Epoch: h.Epoch, Authorship: h.Authorship}, h.Doc, nil
			}
		}
		saved = c
	}
	d, err := f.drafts.Build(ctx, saved, load)
	if err != nil {
		return nil, nil, err
	}
	metrics.FlushSources.WithLabelValues("log").Inc()
	if d.Rev <= d.Saved.Rev {
		return d, nil, nil // nothing to write
	}
	doc, err := d.Doc.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	return d, doc, nil
}

// Message is the `saved` message of the save: pushed to every session of
// the campaign, and the reply to `save`.
func (r Result) Message() protocol.Saved {
	return protocol.Saved{Campaign: r.Campaign, Version: r.Version, Rev: r.Rev, At: protocol.FormatTime(r.At),
		Trigger: string(r.Trigger), Epoch: r.Epoch}
}

// Run flushes dirty drafts on the timer until ctx ends. A draft is due once
// its oldest unsaved edit is Interval old; the dirty set is polled often
// enough (a tenth of the interval, at most every 100 ms) that an edit is
// durable within about Interval plus one poll.
//
// A round flushes its due campaigns with as few at once as finish it
// within half the interval (roundWidth), not Concurrency at once: every
// flush is CPU work (replaying the log, encoding, the store's driver) taken
// from the live edits, and a round of 100 campaigns flushed 8 at a time on
// 2 cores held every edit behind it (C100×10 at 5,000 edits/s, ack p99
// medians of 5: 65 ms at 8, 43 at 2, 42 at 1). Only a round too large for
// one goes wider, up to Concurrency.
func (f *Flusher) Run(ctx context.Context) {
	tick := min(f.opts.Interval/10, 100*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.report(ctx)
		f.prune(time.Now())
		ids, err := f.drafts.Dirty(ctx, time.Now().Add(-f.opts.Interval), 256)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("autosave: read dirty campaigns", "err", err)
			}
			continue
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return !f.due(id) })
		f.mu.Lock()
		took := f.took
		f.mu.Unlock()
		sem := make(chan struct{}, roundWidth(len(ids), took, f.opts.Interval/2, f.opts.Concurrency))
		for _, id := range ids {
			sem <- struct{}{}
			wg.Add(1)
			go func(id string) {
				defer func() { <-sem; wg.Done() }()
				start := time.Now()
				_, err := f.Flush(ctx, id, campaign.TriggerTimer, false)
				if err != nil && !errors.Is(err, ErrBusy) && ctx.Err() == nil {
					f.log.Warn("autosave failed; edits stay in Redis and the flush is retried", "campaign", id, "err", err)
				}
				if err == nil {
					f.mu.Lock()
					f.took = movingAverage(f.took, time.Since(start))
					f.mu.Unlock()
				}
			}(id)
		}
		wg.Wait() // one round at a time: a slow store is not hit by overlapping rounds
	}
}

// roundWidth is how many of a round's n flushes run at once so that the
// round, at took per flush, ends within budget: at least one, at most limit.
func roundWidth(n int, took, budget time.Duration, limit int) int {
	if n <= 1 || budget <= 0 {
		return 1
	}
	w := int((time.Duration(n)*took + budget - 1) / budget)
	return min(max(w, 1), limit)
}

// movingAverage weighs the newest sample an eighth: a single slow flush
// does not widen the next rounds, a slower store soon does.
func movingAverage(avg, sample time.Duration) time.Duration {
	if avg == 0 {
		return sample
	}
	return avg + (sample-avg)/8
}

// prune forgets the backoff of campaigns not retried for a long while: a
// campaign still dirty is retried when due, which renews its entry, so one
// left alone is clean or gone, and the map does not grow with them.
func (f *Flusher) prune(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, b := range f.retry {
		if now.Sub(b.next) > 2*f.opts.MaxBackoff+f.opts.Interval {
			delete(f.retry, id)
		}
	}
}

// Backoffs is how many campaigns the flusher is backing off (for tests and
// metrics).
func (f *Flusher) Backoffs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.retry)
}

func (f *Flusher) due(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.retry[id]
	return !ok || time.Now().After(b.next)
}

// report updates the oldest-unsaved-edit gauge and logs it when saving is
// failing.
func (f *Flusher) report(ctx context.Context) {
	at, ok, err := f.drafts.OldestDirty(ctx)
	if err != nil {
		return
	}
	age := 0.0
	if ok {
		age = time.Since(at).Seconds()
	}
	metrics.OldestUnflushed.Set(age)
	f.mu.Lock()
	healthy := f.healthy
	f.mu.Unlock()
	if !healthy && age > 10 && int(age)%10 == 0 {
		f.log.Warn("autosave is behind", "oldest_unsaved_edit_age_s", int(age))
	}
}

// Healthy reports whether the last flush succeeded (for readiness).
func (f *Flusher) Healthy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthy
}

// FlushAll saves, at shutdown, first the campaigns given (this node's
// rooms: the edits it acknowledged), then every other dirty draft (so the
// last node down leaves nothing unsaved), Concurrency at a time, waiting
// for leases other nodes hold, until ctx ends. No live edit waits on a
// node shutting down, so it uses the full width. The caller gives it a time
// budget of its own: what the session shutdown used is not taken from it.
func (f *Flusher) FlushAll(ctx context.Context, trigger campaign.Trigger, first ...string) error {
	dirty, err := f.drafts.Dirty(ctx, time.Now().Add(time.Hour), 1_000_000)
	if err != nil {
		return err
	}
	ids := slices.Clone(first)
	seen := map[string]bool{}
	for _, id := range first {
		seen[id] = true
	}
	for _, id := range dirty {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, f.opts.Concurrency)
	for i, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, fmt.Errorf("%d campaigns not flushed in time: %w", len(ids)-i, ctx.Err()))...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := f.Flush(ctx, id, trigger, true); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
