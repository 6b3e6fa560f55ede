package session

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
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
	// marks records every entry applied above marksFrom (room_held.go).
	marks      []mark
	marksFrom  int64
	members    map[*Session]*member
	pending    map[int64]committed        // updates that arrived ahead of a gap (at most maxPending)
	fan        []fanned                   // applied, not yet pushed (empty whenever mu is free)
	fanAuthors map[string]struct{}        // fanOutLocked's scratch
	results    map[string]json.RawMessage // kind NUL activity → the newest activity.result or audience.saved
	fanOffs    []int
	waiters    []waiter
	editors    []protocol.Editor

	commits committer
	// delivered mirrors rev (stored wherever rev changes, under mu), for
	// the bus goroutine to drop what is already applied without the lock.
	delivered atomic.Int64

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

func (r *room) load(ctx context.Context, c *campaign.Campaign) error {
	h := r.hub
	if err := h.bus.Subscribe(ctx, r.channel, r.onMessage); err != nil {
		return err
	}
	head, doc, rev, c, err := r.open(ctx, c)
	if err != nil {
		return err
	}
	results, err := h.campaigns.ActivityResults(ctx, r.ws, r.id)
	if err != nil {
		return err
	}
	editors, err := h.drafts.Presence(ctx, r.id)
	if err != nil {
		return err
	}
	if _, err := h.schemas.get(ctx, r.ws); err != nil {
		return err // read now, so that edits have it even if the store goes away
	}
	r.mu.Lock()
	r.resetLocked(head, doc, rev, c)
	r.editors = editors
	for _, res := range results {
		var ev event
		if json.Unmarshal(res, &ev) == nil {
			r.keepResultLocked(ev, res)
		}
	}
	r.loaded = true
	early := r.early
	r.early = nil
	for _, m := range early {
		r.handleLocked(m)
	}
	r.settleLocked()
	r.mu.Unlock()
	runCtx, cancel := context.WithCancel(h.ctx)
	r.stop = cancel
	go r.run(runCtx)
	return nil
}

// resetLocked sets the room's state to a freshly built draft: at load, and
// at every reload (a new epoch, a copy that diverged).
func (r *room) resetLocked(head draft.Head, doc campaign.Document, rev int64, c *campaign.Campaign) {
	r.doc, r.rev, r.epoch, r.status, r.version, r.broken = doc, rev, head.Epoch, campaign.Status(head.Status), c.Version, false
	r.delivered.Store(rev)
	r.saved = max(c.Rev, head.Flushed)
	r.start = head.Start
	r.marks, r.marksFrom = r.marks[:0], rev
	r.size = len(c.Draft) // refined by each edit's delta
	if b, err := doc.Marshal(); err == nil {
		r.size = len(b)
	}
	clear(r.pending)
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
	d, err := r.hub.drafts.Build(ctx, c, func(ctx context.Context) (*campaign.Campaign, error) {
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
			shallow(func() { r.catchUp(ctx) })
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
			shallow(func() { r.pushPresence(ctx) })
		case <-t.C:
			shallow(func() { r.heartbeat(ctx) })
		}
	}
}

// heartbeat keeps the members' presence alive and checks for missed
// updates.
func (r *room) heartbeat(ctx context.Context) {
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
	if _, err := r.hub.schemas.get(ctx, r.ws); err != nil && ctx.Err() == nil {
		r.hub.log.Warn("document schema refresh", "campaign", r.id, "err", err)
	}
	r.catchUp(ctx)
}

// shallow runs fn on a goroutine of its own and waits for it. Goroutines
// that live as long as a session or a room, and spend that life parked,
// run their work this way: work grows the stack it runs on (a Redis call,
// an encode) and a parked goroutine keeps that growth, which for
// thousands of idle sessions is most of their memory.
func shallow(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
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
