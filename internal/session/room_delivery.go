package session

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
)

// onMessage receives the campaign channel's messages (on the bus goroutine).
func (r *room) onMessage(msg []byte) {
	if msg == nil {
		r.poke()
		return
	}
	if string(msg) == protocol.PresenceChanged {
		select {
		case r.presence <- struct{}{}:
		default:
		}
		return
	}
	if origin, _, ok := draft.Updates(msg); ok && string(origin) == r.hub.origin {
		// This node's own batches coming back: the group commit delivered
		// them from the script's reply (a lost reply pokes a log fill), so
		// they are dropped unread, without the room lock.
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		r.early = append(r.early, msg)
		return
	}
	r.handleLocked(msg)
}

// poke asks the room goroutine to check Redis for missed updates.
func (r *room) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *room) handleLocked(msg []byte) {
	// (This node's own batches never get here: onMessage drops them, also
	// while the room loads.)
	if _, updates, ok := draft.Updates(msg); ok {
		for len(updates) > 0 {
			var line []byte
			line, updates = protocol.NextMessage(updates)
			r.deliverLocked(committed{msg: line})
		}
		r.settleLocked()
		return
	}
	if protocol.IsUpdate(msg) { // one update alone: a node of an earlier version published it
		r.deliverLocked(committed{msg: msg})
		r.settleLocked()
		return
	}
	// Any other event (status, saved, activity results...) goes to every
	// session as it is; a status change is also remembered.
	var ev event
	if json.Unmarshal(msg, &ev) != nil {
		return
	}
	switch ev.Type {
	case "activity.result", "audience.saved":
		r.keepResultLocked(ev, msg)
	case "status":
		r.status = campaign.Status(ev.Status)
	case "saved", "published":
		if ev.Version > r.version {
			r.version = ev.Version
		}
		if ev.Type == "saved" && ev.Rev > r.saved {
			r.saved = ev.Rev
			r.trimMarksLocked(ev.Rev)
		}
	case "refresh":
		// A restored version: the restoring edit came first on this channel;
		// the snapshot that follows the refresh is sent once the room holds it.
		resync := func(bool) {
			snap := r.snapshotLocked(nil)
			for _, m := range r.members {
				m.s.Send(msg)
				m.s.send(snap)
			}
		}
		if r.rev >= ev.Rev {
			resync(true)
		} else {
			r.waiters = append(r.waiters, waiter{rev: ev.Rev, fn: resync})
			r.poke()
		}
		return
	}
	for _, m := range r.members {
		m.s.Send(msg)
	}
}

// committed is an accepted batch on its way into the room: the update
// message as sessions receive it and, when the node that accepted it is
// this one, its already parsed form (nil otherwise: decoded on apply).
type committed struct {
	msg []byte
	u   *draft.Update
}

// maxPending bounds the updates held ahead of a gap. Past it the gap is
// not closing (the log cannot be read): drop them and rebuild the room.
const maxPending = 10_000

// deliverLocked takes a committed update from any source (the edit
// script's reply, pub/sub, a log read) and applies it in rev order. The
// members get it at the next settleLocked, which every delivery ends with
// before it lets go of the lock.
func (r *room) deliverLocked(c committed) {
	rev := protocol.FrameRev(c.msg)
	if rev <= r.rev {
		return // already applied
	}
	if rev > r.rev+1 {
		if len(r.pending) >= maxPending {
			clear(r.pending)
			r.broken = true
		} else {
			r.pending[rev] = c
		}
		r.poke()
		return
	}
	for {
		r.applyLocked(c, r.rev+1)
		next, ok := r.pending[r.rev+1]
		if !ok {
			break
		}
		delete(r.pending, r.rev+1)
		c = next
	}
	for rev := range r.pending {
		if rev <= r.rev {
			delete(r.pending, rev)
		}
	}
}

// settleLocked ends a delivery: the updates applied since the last settle
// go to the members, then the waiters run (an ack must follow every update
// delivered before it).
func (r *room) settleLocked() {
	r.fanOutLocked()
	r.runWaitersLocked()
}

// fanned is an update applied but not yet pushed to the members.
type fanned struct {
	msg    []byte
	author string // the author's session id, "" when unknown
}

// fanOutLocked pushes the updates applied since the last call to every
// member but their authors. Several updates delivered together (a group
// commit, a pub/sub message of another node's group, a log read) are joined
// once, by the batch separator, and reach each session as one queued
// message: one push and one writer wake per session per delivery, not per
// update. An author gets the runs of that same copy around its own updates,
// as sub-slices: nothing is copied per session.
func (r *room) fanOutLocked() {
	fan := r.fan
	switch len(fan) {
	case 0:
		return
	case 1:
		f := fan[0]
		for s, m := range r.members {
			if s.id != f.author {
				m.s.send(outMsg{b: f.msg, kind: kindUpdate, campaign: r.id})
			}
		}
	default:
		size := 0
		for _, f := range fan {
			size += len(f.msg) + 1
		}
		all := make([]byte, 0, size)
		offs := r.fanOffs[:0]
		authors := r.fanAuthors
		clear(authors)
		for _, f := range fan {
			offs = append(offs, len(all))
			all = append(append(all, f.msg...), protocol.BatchSeparator)
			if f.author != "" {
				authors[f.author] = struct{}{}
			}
		}
		offs = append(offs, len(all))
		r.fanOffs = offs
		// run is fan[a:b] as one message of all.
		run := func(a, b int) outMsg {
			return outMsg{b: all[offs[a] : offs[b]-1], kind: kindUpdate, campaign: r.id, joined: b-a > 1}
		}
		whole := run(0, len(fan))
		for s, m := range r.members {
			if _, own := authors[s.id]; !own {
				m.s.send(whole)
				continue
			}
			a := 0
			for i, f := range fan {
				if f.author == s.id {
					if i > a {
						m.s.send(run(a, i))
					}
					a = i + 1
				}
			}
			if a < len(fan) {
				m.s.send(run(a, len(fan)))
			}
		}
	}
	clear(fan)
	r.fan = fan[:0]
	if cap(r.fan) > maxGroup {
		r.fan, r.fanOffs = nil, nil
	}
}

func (r *room) applyLocked(c committed, rev int64) {
	u, err := c.u, error(nil)
	if u == nil {
		u, err = draft.DecodeUpdate(c.msg)
	}
	if err == nil {
		var ch *campaign.Change
		ch, err = r.doc.Apply(u.Ops)
		if err == nil {
			r.size += ch.SizeDelta
			r.markLocked(rev, u)
		}
	}
	if err != nil {
		// Every committed batch was validated against a draft the overlap
		// rule protects, so this means the copies diverged: rebuild.
		r.hub.log.Error("committed update does not apply; reloading the draft", "campaign", r.id, "rev", rev, "err", err)
		r.broken = true
		r.poke()
	}
	r.rev = rev
	r.delivered.Store(rev)
	author := ""
	if u != nil {
		author = u.By.Session
		if u.At > 0 {
			metrics.FanoutLag.Observe(time.Since(time.UnixMilli(u.At)).Seconds())
		}
	}
	r.fan = append(r.fan, fanned{msg: c.msg, author: author})
}

// after runs fn once the room has delivered rev (at once if it has).
func (r *room) after(rev int64, fn func(ok bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rev >= rev {
		fn(true)
		return
	}
	r.waiters = append(r.waiters, waiter{rev: rev, fn: fn})
}

func (r *room) runWaitersLocked() {
	if len(r.waiters) == 0 {
		return
	}
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if w.rev <= r.rev {
			w.fn(true)
		} else {
			kept = append(kept, w)
		}
	}
	r.waiters = kept
}

// fill reads the log from the room's rev up to upto (-1: the end) and
// delivers it. A log that no longer reaches back to the room's rev means the
// history was trimmed or lost: the room reloads.
func (r *room) fill(ctx context.Context, upto int64) error {
	r.fillMu.Lock()
	defer r.fillMu.Unlock()
	r.mu.Lock()
	from := r.rev
	r.mu.Unlock()
	if upto >= 0 && upto <= from {
		return nil
	}
	entries, err := r.hub.drafts.Log(ctx, r.id, from, upto)
	if err != nil {
		return err
	}
	if len(entries) > 0 && entries[0].Rev != from+1 {
		return r.reloadFilling(ctx)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		r.deliverLocked(committed{msg: e.Msg})
	}
	r.settleLocked()
	return nil
}

// reload rebuilds the room from the saved draft and the log (a new epoch,
// or a copy that diverged) and tells every session: refresh "gap", then a
// fresh snapshot. Waiting acks fail: their edits may be gone with the epoch.
func (r *room) reload(ctx context.Context) error {
	r.fillMu.Lock()
	defer r.fillMu.Unlock()
	return r.reloadFilling(ctx)
}

// reloadFilling is reload for a caller that holds fillMu (a fill that found
// the log no longer reaches back): "Locked" names the room lock only.
func (r *room) reloadFilling(ctx context.Context) error {
	h := r.hub
	c, err := h.campaigns.Campaign(ctx, r.ws, r.id)
	if err != nil {
		return err
	}
	head, doc, rev, c, err := r.open(ctx, c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lostHistory := head.Epoch != r.epoch
	r.resetLocked(head, doc, rev, c)
	for _, w := range r.waiters {
		w.fn(!lostHistory && w.rev <= r.rev)
	}
	r.waiters = nil
	for _, m := range r.members {
		r.resyncLocked(m, nil)
	}
	h.log.Info("campaign draft reloaded", "campaign", r.id, "rev", rev, "epoch", head.Epoch, "new_epoch", lostHistory)
	return nil
}

// resyncLocked sends a session refresh "gap" and a fresh snapshot.
func (r *room) resyncLocked(m *member, req *protocol.Request) {
	var ref json.RawMessage
	if req != nil {
		ref = req.Ref
	}
	m.s.Send(protocol.Encode(ref, protocol.Refresh{Campaign: r.id, Rev: r.rev, Reason: protocol.ReasonGap}))
	m.s.send(r.snapshotLocked(ref))
}

// maxResults bounds the activity results a room keeps for its snapshots.
const maxResults = 200

// event is what the room reads of a non-update message on its channel.
type event struct {
	Type     string `json:"type"`
	Status   string `json:"status"`
	Version  int64  `json:"version"`
	Rev      int64  `json:"rev"`
	Activity string `json:"activity"`
}

// keepResultLocked remembers an activity's newest result of its kind (a run,
// a Save audience), for the snapshots of sessions that join later.
func (r *room) keepResultLocked(ev event, msg []byte) {
	if ev.Activity == "" {
		return
	}
	key := ev.Type + "\x00" + ev.Activity
	if _, ok := r.results[key]; !ok && len(r.results) >= maxResults {
		return
	}
	if r.results == nil {
		r.results = map[string]json.RawMessage{}
	}
	r.results[key] = append(json.RawMessage(nil), msg...)
}

func (r *room) snapshotLocked(ref json.RawMessage) outMsg {
	doc, err := r.doc.Marshal()
	if err != nil {
		doc = []byte("{}")
	}
	return outMsg{kind: kindSnapshot, campaign: r.id, b: protocol.Encode(ref, protocol.Snapshot{Campaign: r.id, Status: string(r.status), Rev: r.rev,
		Epoch: r.epoch, Doc: doc, Version: r.version, SavedRev: min(r.saved, r.rev), EpochStart: r.start,
		Editors: r.editorsLocked(), EditorsTotal: len(r.editors), Results: r.resultsLocked()})}
}

// resultsLocked lists the kept results, runs before saves so that a save's
// counts are shown over its run's.
func (r *room) resultsLocked() []json.RawMessage {
	if len(r.results) == 0 {
		return nil
	}
	keys := make([]string, 0, len(r.results))
	for k := range r.results {
		keys = append(keys, k)
	}
	sort.Strings(keys) // "activity.result" sorts before "audience.saved"
	out := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		out[i] = r.results[k]
	}
	return out
}
