package session

import (
	"context"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
)

// join adds the member and sends what it missed: with since (of this epoch,
// within the kept log) the missed updates then joined; otherwise a snapshot,
// preceded by refresh "gap" when a since could not be honoured. The log read
// happens under the room lock so that no live update can overtake it.
func (r *room) join(ctx context.Context, m *member, req *protocol.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Since != nil && req.Epoch == r.epoch && *req.Since >= 0 && *req.Since <= r.rev {
		since := *req.Since
		entries, err := r.hub.drafts.Log(ctx, r.id, since, r.rev)
		if err != nil {
			return err
		}
		if int64(len(entries)) == r.rev-since && (len(entries) == 0 || entries[0].Rev == since+1) {
			r.members[m.s] = m
			for _, e := range entries {
				m.s.send(outMsg{b: e.Msg, kind: kindUpdate, campaign: r.id})
			}
			m.s.Send(protocol.Encode(req.Ref, protocol.Joined{Campaign: r.id, Rev: r.rev, Epoch: r.epoch}))
			return nil
		}
	}
	r.members[m.s] = m
	if req.Since != nil {
		r.resyncLocked(m, req)
		return nil
	}
	m.s.send(r.snapshotLocked(req.Ref))
	return nil
}

// edit validates a batch against the room's draft (as of at least base and
// the session's own last ack), has the edit script order it, and answers:
// ack once the room has delivered the new rev, refresh on a conflict. It
// reports whether the batch is in the draft (accepted now or before).
func (r *room) edit(ctx context.Context, m *member, req *protocol.Request, ops []campaign.Op, base int64, id string) (bool, error) {
	s := m.s
	need := max(base, m.lastAck)
	r.mu.Lock()
	behind := r.rev < need
	r.mu.Unlock()
	if behind {
		if err := r.fill(ctx, need); err != nil {
			return false, err
		}
	}
	schema := r.hub.schemas.current(r.ws) // read at load, kept fresh by the heartbeat: no I/O here
	role := string(s.Claims().Role)
	r.mu.Lock()
	if base > r.rev {
		rev := r.rev
		r.mu.Unlock()
		return false, errcode.New(errcode.Invalid, "base %d is above the current rev %d", base, rev)
	}
	if !r.status.Editable() {
		r.mu.Unlock()
		return false, errcode.New(errcode.Conflict, "campaign %s is %s and refuses edits", r.id, r.status)
	}
	keys := make([]string, len(ops))
	writes := make([]bool, len(ops))
	for i, op := range ops {
		keys[i] = r.doc.ConflictKey(op.Pointer).String()
		writes[i] = op.Writes()
	}
	ch, err := r.doc.Apply(ops)
	epoch := r.epoch
	if err != nil {
		r.mu.Unlock()
		return false, r.invalid(ctx, m, req, base, epoch, keys, writes, err)
	}
	if schema != nil {
		// Checked where the ops land, on the draft as they leave it.
		if err := schema.Check(r.doc, ops, role); err != nil {
			ch.Undo()
			r.mu.Unlock()
			return false, err
		}
	}
	size := r.size + ch.SizeDelta
	ch.Undo()
	r.mu.Unlock()
	if max := r.hub.cfg.Limits.MaxDocBytes; size > max {
		return false, errcode.New(errcode.TooLarge, "the campaign document would be %d bytes, over the %d limit", size, max)
	}

	opsJSON, err := campaign.MarshalOps(ops)
	if err != nil {
		return false, errcode.New(errcode.Invalid, "ops: %v", err)
	}
	c := s.Claims()
	sentAt := time.Now()
	prefix, suffix := protocol.Update{Campaign: r.id, Ops: opsJSON, By: protocol.Author{User: c.User, Name: c.Name, Session: s.id},
		ID: id, At: sentAt}.Frame()
	// This node holds the batch parsed already: the room applies it
	// without decoding the message it just framed.
	u := &draft.Update{Ops: ops, At: sentAt.UnixMilli()}
	u.By.User, u.By.Session = c.User, s.id
	res, err := r.commit(draft.Batch{Workspace: r.ws, Campaign: r.id, Epoch: epoch, Base: base,
		Session: s.id, User: c.User, ID: id, Origin: r.hub.origin, Prefix: prefix, Suffix: suffix, Keys: keys, Writes: writes}, u)
	if err != nil {
		return false, err
	}
	switch res.Outcome {
	case draft.Accepted, draft.Duplicate:
		if res.Outcome == draft.Accepted {
			metrics.Edits.Inc() // and delivered already, by the group commit
		} else if err := r.fill(ctx, res.Rev); err != nil {
			return false, err
		}
		if res.Rev > m.lastAck {
			m.lastAck = res.Rev
		}
		ack := protocol.EncodeAck(req.Ref, protocol.Ack{Campaign: r.id, Rev: res.Rev, Duplicate: res.Outcome == draft.Duplicate})
		r.after(res.Rev, func(ok bool) {
			if ok {
				s.Send(ack)
			} else {
				s.ReplyError(req, errcode.New(errcode.Unavailable, "the draft history was lost before this edit was delivered; resend it after the fresh snapshot"))
			}
		})
		return true, nil
	case draft.Conflict:
		return false, r.refresh(ctx, m, req, res)
	case draft.Gap:
		r.mu.Lock()
		r.resyncLocked(m, req)
		r.mu.Unlock()
		return false, nil
	case draft.Ahead:
		return false, errcode.New(errcode.Invalid, "base %d is above the current rev %d", base, res.Rev)
	case draft.Archived:
		return false, errcode.New(errcode.Conflict, "campaign %s is archived and refuses edits", r.id)
	case draft.Full:
		return false, errcode.New(errcode.Unavailable, "campaign %s has too many unsaved edits; retry once autosave catches up", r.id)
	case draft.Restarted:
		// Redis restarted under this buffer: reopening it starts a new
		// epoch, and every session resyncs and resends what was lost.
		r.mu.Lock()
		r.broken = true
		r.mu.Unlock()
		r.poke()
		return false, errcode.New(errcode.Unavailable, "Redis restarted; a fresh snapshot follows, resend after it")
	default: // the epoch changed or the buffer is gone: reload and resync everyone
		r.poke()
		return false, errcode.New(errcode.Unavailable, "the draft history was reset; a fresh snapshot follows, resend after it")
	}
}

// refresh answers a losing batch once the room has delivered the winner's
// rev: the conflicting paths with their current values.
func (r *room) refresh(ctx context.Context, m *member, req *protocol.Request, res draft.Result) error {
	metrics.Conflicts.Inc()
	if err := r.fill(ctx, res.Rev); err != nil {
		return err
	}
	r.after(res.Rev, func(ok bool) {
		// Runs under the room lock: the values are those of r.rev, and every
		// update up to r.rev is already in the session's queue.
		values := map[string]any{}
		for _, k := range res.Conflicts {
			if p, err := campaign.ParsePointer(k); err == nil {
				if v, ok := r.doc.Get(p); ok {
					values[k] = v
				}
			}
		}
		m.s.Reply(req, protocol.Refresh{Campaign: r.id, Rev: r.rev, Reason: protocol.ReasonConflict, Paths: res.Conflicts, Values: values})
	})
	return nil
}

// invalid handles a batch that does not apply to the room's draft. The draft
// may be newer than the batch's base: when another session changed those
// paths since base, the batch lost a race and gets a refresh; otherwise it
// is simply invalid.
func (r *room) invalid(ctx context.Context, m *member, req *protocol.Request, base int64, epoch string, keys []string, writes []bool, invalid error) error {
	if base >= r.revNow() {
		return invalid
	}
	res, err := r.hub.drafts.Apply(ctx, draft.Batch{Workspace: r.ws, Campaign: r.id, Epoch: epoch, Base: base,
		Session: m.s.id, User: m.s.Claims().User, Keys: keys, Writes: writes, CheckOnly: true})
	if err != nil || res.Outcome != draft.Conflict {
		return invalid
	}
	return r.refresh(ctx, m, req, res)
}

func (r *room) revNow() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rev
}

// maxGroup bounds the batches of one script call: a call holds Redis for
// the whole group (about 20 µs a batch).
const maxGroup = 128

// committer is a room's group commit. The edit script costs a round trip
// and a fixed setup per call whatever it carries, so the batches a room's
// sessions send while a call is in flight go together in the next one. No
// goroutine of its own: the first caller leads, commits what is queued,
// and hands the lead to the next waiter when more arrived meanwhile.
type committer struct {
	mu      sync.Mutex // guards the following fields
	queue   []*commitReq
	leading bool // a caller is committing; the others wait
}

type commitReq struct {
	batch    draft.Batch
	update   *draft.Update // the batch parsed, delivered once accepted
	deadline time.Time     // RedisTimeout after the edit arrived
	res      draft.Result
	err      error
	lead     bool // set instead of a result: commit what is queued
	done     chan struct{}
}

// commit has the edit script order b, with whatever other batches of the
// room are waiting, and returns b's result. The hub's RedisTimeout bounds
// the whole wait, from b's arrival: time queued behind a call in flight
// counts, so when Redis stops answering every edit hears so within the
// bound, not after its turn plus a call of its own.
func (r *room) commit(b draft.Batch, u *draft.Update) (draft.Result, error) {
	c := &r.commits
	req := &commitReq{batch: b, update: u, deadline: time.Now().Add(r.hub.cfg.RedisTimeout), done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.mu.Unlock()
		<-req.done
		if !req.lead {
			return req.res, req.err
		}
		c.mu.Lock()
	} else {
		c.leading = true
	}
	// Leading: commit one group (ours is in it: we are first in line).
	group := c.queue[:min(len(c.queue), maxGroup)]
	c.queue = append([]*commitReq(nil), c.queue[len(group):]...)
	c.mu.Unlock()
	r.commitGroup(group)
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.leading = false
	} else {
		next := c.queue[0]
		next.lead = true
		close(next.done)
	}
	c.mu.Unlock()
	return req.res, req.err
}

// commitGroup runs the script for a group, one call per run of batches of
// the same epoch, delivers what it accepted to the room in one go (each
// member gets the group's updates as one message), and answers every
// request in it. The first request is the leader's own: it reads its
// result when this returns, without a signal.
//
// The script's pub/sub copy of these updates is dropped by every room of
// this node, so a call whose reply is lost (a timeout after the script
// ran) pokes the room to read them from the log.
func (r *room) commitGroup(group []*commitReq) {
	var accepted []committed
	for start := 0; start < len(group); {
		end := start + 1
		for end < len(group) && group[end].batch.Epoch == group[start].batch.Epoch {
			end++
		}
		run := group[start:end]
		batches := make([]draft.Batch, len(run))
		deadline := run[0].deadline
		for i, q := range run {
			batches[i] = q.batch
			if q.deadline.Before(deadline) {
				deadline = q.deadline
			}
		}
		ctx, cancel := context.WithDeadline(r.hub.ctx, deadline)
		res, err := r.hub.drafts.ApplyMany(ctx, batches)
		cancel()
		for i, q := range run {
			if err != nil {
				q.err = err
				continue
			}
			q.res = res[i]
			if q.res.Outcome == draft.Accepted {
				q.update.Rev = q.res.Rev
				accepted = append(accepted, committed{msg: protocol.JoinFrame(q.batch.Prefix, q.res.Rev, q.batch.Suffix), u: q.update})
			}
		}
		if err != nil {
			r.poke()
		}
		start = end
	}
	if len(accepted) > 0 {
		r.mu.Lock()
		for _, c := range accepted {
			r.deliverLocked(c)
		}
		r.settleLocked()
		r.mu.Unlock()
		r.hub.feed.noteRenames(r.ws, r.id, accepted)
	}
	for _, q := range group[1:] {
		close(q.done)
	}
}
