package session

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
)

// member is one session's place in a room. Its fields are owned by the
// session's reader goroutine.
type member struct {
	s       *Session
	room    *room
	tab     string
	editing string
	field   string
	lastAck int64 // the newest rev acknowledged to this session
}

func (m *member) presence() protocol.Editor {
	c := m.s.Claims()
	return protocol.Editor{User: c.User, Name: c.Name, Session: m.s.id, Tab: m.tab, Editing: m.editing, Field: m.field}
}

// waiter runs once the room has delivered rev (ok) or lost its history (not ok).
type waiter struct {
	rev int64
	fn  func(ok bool)
}

// room is one campaign on this node: its draft as of rev (the saved draft
// plus the log), the sessions that joined it, and a goroutine that keeps
// presence alive and catches up when pub/sub missed something.
type room struct {
	hub     *Hub
	id, ws  string
	channel string

	ready  chan struct{} // closed once loaded (err says how)
	err    error
	closed chan struct{} // closed once the room is gone from the hub
	// refs and closing are guarded by hub.mu.
	refs    int
	closing bool

	mu      sync.Mutex // guards the following fields
	loaded  bool
	early   [][]byte // messages that arrived while loading
	doc     campaign.Document
	size    int
	rev     int64
	epoch   string
	status  campaign.Status
	version int64
	saved   int64 // the rev the durable store holds (snapshot saved_rev)
	start   int64 // the saved rev when the epoch began (snapshot epoch_start)
	broken  bool  // the doc could not apply a committed entry: reload
	members map[*Session]*member
	pending map[int64]committed // updates that arrived ahead of a gap (at most maxPending)
	waiters []waiter
	editors []protocol.Editor

	commits committer

	fillMu   sync.Mutex // one gap fill at a time
	kick     chan struct{}
	presence chan struct{}
	stop     context.CancelFunc
	done     chan struct{}
}

// campaignIDOK checks a campaign id's shape before it reaches any store.
func campaignIDOK(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// acquire returns the loaded room of c, creating it on first use.
func (h *Hub) acquire(ctx context.Context, c *campaign.Campaign) (*room, error) {
	for {
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			return nil, errcode.New(errcode.Unavailable, "this node is shutting down")
		}
		r := h.rooms[c.ID]
		if r != nil && r.closing {
			h.mu.Unlock()
			<-r.closed
			continue
		}
		if r != nil {
			r.refs++
			h.mu.Unlock()
			select {
			case <-r.ready:
			case <-ctx.Done():
				h.release(r)
				return nil, ctx.Err()
			}
			if r.err != nil {
				h.release(r)
				return nil, r.err
			}
			return r, nil
		}
		r = &room{hub: h, id: c.ID, ws: c.Workspace, channel: h.drafts.Channel(c.ID), refs: 1,
			ready: make(chan struct{}), closed: make(chan struct{}), members: map[*Session]*member{},
			pending: map[int64]committed{}, kick: make(chan struct{}, 1), presence: make(chan struct{}, 1),
			done: make(chan struct{})}
		h.rooms[c.ID] = r
		h.wg.Add(1)
		h.mu.Unlock()
		metrics.Rooms.Inc()
		r.err = r.load(ctx, c)
		close(r.ready)
		if r.err != nil {
			h.release(r)
			return nil, r.err
		}
		return r, nil
	}
}

// release drops a reference; the last one closes the room.
func (h *Hub) release(r *room) (last bool) {
	h.mu.Lock()
	r.refs--
	if r.refs > 0 {
		h.mu.Unlock()
		return false
	}
	r.closing = true
	h.mu.Unlock()
	r.close()
	h.mu.Lock()
	if h.rooms[r.id] == r {
		delete(h.rooms, r.id)
	}
	h.mu.Unlock()
	close(r.closed)
	metrics.Rooms.Dec()
	h.wg.Done()
	return true
}

func (r *room) load(ctx context.Context, c *campaign.Campaign) error {
	h := r.hub
	if err := h.bus.Subscribe(ctx, r.channel, r.onMessage); err != nil {
		return err
	}
	head, doc, rev, c, err := r.open(ctx, c)
	if err != nil {
		return err
	}
	editors, err := h.drafts.Presence(ctx, r.id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.doc, r.rev, r.epoch, r.status, r.version = doc, rev, head.Epoch, campaign.Status(head.Status), c.Version
	r.saved = max(c.Rev, head.Flushed)
	r.start = head.Start
	r.size = len(c.Draft) // refined by each edit's delta
	if b, err := doc.Marshal(); err == nil {
		r.size = len(b)
	}
	r.editors = editors
	r.loaded = true
	early := r.early
	r.early = nil
	for _, m := range early {
		r.handleLocked(m)
	}
	r.mu.Unlock()
	runCtx, cancel := context.WithCancel(h.ctx)
	r.stop = cancel
	go r.run(runCtx)
	return nil
}

// open makes sure the campaign's Redis buffer exists (a new epoch, fenced in
// the store, when it was lost) and rebuilds the working draft from c and the
// log. c is read again when the store moved under a fence.
func (r *room) open(ctx context.Context, c *campaign.Campaign) (draft.Head, campaign.Document, int64, *campaign.Campaign, error) {
	var head draft.Head
	var err error
	for attempt := 0; ; attempt++ {
		saved := c
		head, err = r.hub.drafts.Open(ctx, r.ws, r.id, saved.Rev, string(saved.Status), func(ctx context.Context, epoch string) error {
			return r.hub.campaigns.FenceEpoch(ctx, r.ws, r.id, saved.Epoch, saved.Rev, epoch)
		})
		if err == nil {
			break
		}
		if !errcode.Is(err, errcode.Conflict) || attempt >= 4 {
			return draft.Head{}, nil, 0, nil, err
		}
		if c, err = r.hub.campaigns.Campaign(ctx, r.ws, r.id); err != nil {
			return draft.Head{}, nil, 0, nil, err
		}
	}
	if head.Created && head.Rev > head.Flushed {
		// A new epoch over content Redis kept (it restarted): the dirty mark
		// may be among the writes it lost, and unsaved edits must be saved.
		if err := r.hub.drafts.MarkClean(ctx, r.id); err != nil {
			return draft.Head{}, nil, 0, nil, err
		}
	}
	doc, rev, err := r.build(ctx, c)
	return head, doc, rev, c, err
}

// build returns the working draft, starting from c (already read) and
// reading the campaign again only when a concurrent flush trimmed the log.
func (r *room) build(ctx context.Context, c *campaign.Campaign) (campaign.Document, int64, error) {
	first := true
	d, err := r.hub.drafts.Build(ctx, func(ctx context.Context) (*campaign.Campaign, error) {
		if first {
			first = false
			return c, nil
		}
		return r.hub.campaigns.Campaign(ctx, r.ws, r.id)
	})
	if err != nil {
		return nil, 0, err
	}
	return d.Doc, d.Rev, nil
}

func (r *room) close() {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	r.hub.bus.Unsubscribe(context.Background(), r.channel)
	r.mu.Lock()
	for _, w := range r.waiters {
		w.fn(false)
	}
	r.waiters = nil
	r.mu.Unlock()
}

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
	if protocol.IsUpdate(msg) {
		r.deliverLocked(committed{msg: msg})
		return
	}
	// Any other event (status, saved, activity results...) goes to every
	// session as it is; a status change is also remembered.
	var ev struct {
		Type    string `json:"type"`
		Status  string `json:"status"`
		Version int64  `json:"version"`
		Rev     int64  `json:"rev"`
	}
	if json.Unmarshal(msg, &ev) != nil {
		return
	}
	switch ev.Type {
	case "status":
		r.status = campaign.Status(ev.Status)
	case "saved", "published":
		if ev.Version > r.version {
			r.version = ev.Version
		}
		if ev.Type == "saved" && ev.Rev > r.saved {
			r.saved = ev.Rev
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

// deliver takes a committed update from any source (the edit script's reply,
// pub/sub, a log read) and applies it in rev order. u may be nil.
func (r *room) deliver(msg []byte, u *draft.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliverLocked(committed{msg: msg, u: u})
}

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
	r.runWaitersLocked()
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
	author := ""
	if u != nil {
		author = u.By.Session
		if u.At > 0 {
			metrics.FanoutLag.Observe(time.Since(time.UnixMilli(u.At)).Seconds())
		}
	}
	for s, m := range r.members {
		if s.id != author {
			m.s.send(outMsg{b: c.msg, kind: kindUpdate, campaign: r.id})
		}
	}
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
		return r.reloadLocked(ctx)
	}
	for _, e := range entries {
		r.deliver(e.Msg, nil)
	}
	return nil
}

// reload rebuilds the room from the saved draft and the log (a new epoch,
// or a copy that diverged) and tells every session: refresh "gap", then a
// fresh snapshot. Waiting acks fail: their edits may be gone with the epoch.
func (r *room) reload(ctx context.Context) error {
	r.fillMu.Lock()
	defer r.fillMu.Unlock()
	return r.reloadLocked(ctx)
}

func (r *room) reloadLocked(ctx context.Context) error {
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
	r.doc, r.rev, r.epoch, r.status, r.version, r.broken = doc, rev, head.Epoch, campaign.Status(head.Status), c.Version, false
	r.saved = max(c.Rev, head.Flushed)
	r.start = head.Start
	if b, err := doc.Marshal(); err == nil {
		r.size = len(b)
	}
	clear(r.pending)
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

func (r *room) snapshotLocked(ref json.RawMessage) outMsg {
	doc, err := r.doc.Marshal()
	if err != nil {
		doc = []byte("{}")
	}
	return outMsg{kind: kindSnapshot, campaign: r.id, b: protocol.Encode(ref, protocol.Snapshot{Campaign: r.id, Status: string(r.status), Rev: r.rev,
		Epoch: r.epoch, Doc: doc, Version: r.version, SavedRev: min(r.saved, r.rev), EpochStart: r.start,
		Editors: r.editorsLocked(), EditorsTotal: len(r.editors)})}
}

// maxEditorsShown bounds the presence entries a snapshot or presence push
// carries. A room of a thousand watchers would otherwise send a thousand
// entries to each of a thousand sessions on every change (150 MB), which
// is what stalled fan-out in the side-by-side S2 runs; editors_total says
// how many there are.
const maxEditorsShown = 50

// editorsLocked returns the presence entries to show: those in a field or a
// full-screen editor first, then the others, at most maxEditorsShown.
func (r *room) editorsLocked() []protocol.Editor {
	if len(r.editors) <= maxEditorsShown {
		if r.editors == nil {
			return []protocol.Editor{}
		}
		return r.editors
	}
	out := make([]protocol.Editor, 0, maxEditorsShown)
	for pass := 0; pass < 2 && len(out) < maxEditorsShown; pass++ {
		for _, p := range r.editors {
			active := p.Field != "" || p.Editing != ""
			if (pass == 0) == active && len(out) < maxEditorsShown {
				out = append(out, p)
			}
		}
	}
	return out
}

// presenceEvery bounds how often a room pushes presence to its sessions,
// plus a millisecond per member.
const presenceEvery = 100 * time.Millisecond

// run keeps the room alive: presence heartbeats, gap checks, presence pushes.
func (r *room) run(ctx context.Context) {
	defer close(r.done)
	beat := r.hub.presenceTTL / 3
	if beat <= 0 {
		beat = 10 * time.Second
	}
	t := time.NewTicker(beat)
	defer t.Stop()
	var lastPush time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			r.catchUp(ctx)
		case <-r.presence:
			// A join storm of N sessions would otherwise send N lists of N
			// entries to N sessions: big rooms push less often.
			r.mu.Lock()
			every := presenceEvery + time.Duration(len(r.members))*time.Millisecond
			r.mu.Unlock()
			if wait := every - time.Since(lastPush); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			lastPush = time.Now()
			r.pushPresence(ctx)
		case <-t.C:
			r.mu.Lock()
			ids := make([]string, 0, len(r.members))
			for s := range r.members {
				ids = append(ids, s.id)
			}
			r.mu.Unlock()
			if len(ids) > 0 {
				if err := r.hub.drafts.TouchPresence(ctx, r.id, ids); err != nil && ctx.Err() == nil {
					r.hub.log.Warn("presence heartbeat", "campaign", r.id, "err", err)
				}
			}
			r.catchUp(ctx)
		}
	}
}

// catchUp compares the room with Redis: a new epoch or a broken copy
// reloads, a missed update is filled from the log.
func (r *room) catchUp(ctx context.Context) {
	head, ok, err := r.hub.drafts.Head(ctx, r.id)
	if err != nil {
		if ctx.Err() == nil {
			r.hub.log.Warn("draft head", "campaign", r.id, "err", err)
		}
		return
	}
	r.mu.Lock()
	needReload := !ok || head.Epoch != r.epoch || r.broken
	behind := head.Rev > r.rev
	r.mu.Unlock()
	switch {
	case needReload:
		err = r.reload(ctx)
	case behind:
		err = r.fill(ctx, head.Rev)
	}
	if err != nil && ctx.Err() == nil {
		r.hub.log.Warn("catch up", "campaign", r.id, "err", err)
	}
}

func (r *room) pushPresence(ctx context.Context) {
	list, err := r.hub.drafts.Presence(ctx, r.id)
	if err != nil {
		if ctx.Err() == nil {
			r.hub.log.Warn("presence", "campaign", r.id, "err", err)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.editors = list
	msg := protocol.Encode(nil, protocol.Presence{Campaign: r.id, Editors: r.editorsLocked(), EditorsTotal: len(r.editors)})
	for _, m := range r.members {
		m.s.Send(msg)
	}
}
