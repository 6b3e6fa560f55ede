package session

import (
	"context"
	"encoding/json"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/protocol"
)

// member returns the session's membership of the request's campaign, or the
// error every campaign command answers when the session has not joined.
func (s *Session) member(req *protocol.Request) (*member, error) {
	if m := s.joined[req.Campaign]; m != nil {
		return m, nil
	}
	return nil, errcode.New(errcode.Invalid, "join campaign %q first", req.Campaign)
}

// Member exposes the joined room to handlers registered by other packages.
func (s *Session) Member(req *protocol.Request) (*Room, error) {
	m, err := s.member(req)
	if err != nil {
		return nil, err
	}
	return &Room{m: m}, nil
}

func (s *Session) join(req *protocol.Request) error {
	if !campaignIDOK(req.Campaign) {
		return errcode.New(errcode.Invalid, "bad campaign id %q", req.Campaign)
	}
	if s.joined[req.Campaign] != nil {
		return errcode.New(errcode.Invalid, "already joined campaign %s", req.Campaign)
	}
	if max := s.hub.cfg.MaxJoined; len(s.joined) >= max {
		return errcode.New(errcode.TooLarge, "a session may join at most %d campaigns at once; leave one first", max)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	c, err := s.hub.campaigns.Campaign(ctx, s.claims.Workspace, req.Campaign)
	if err != nil {
		return err
	}
	r, err := s.hub.acquire(ctx, c)
	if err != nil {
		return err
	}
	m := &member{s: s, room: r}
	if err := r.join(ctx, m, req); err != nil {
		s.hub.release(r)
		return err
	}
	s.joined[req.Campaign] = m
	if err := s.hub.drafts.SetPresence(ctx, r.id, m.presence()); err != nil {
		s.hub.log.Warn("set presence", "campaign", r.id, "err", err)
	}
	return nil
}

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

func (s *Session) leave(req *protocol.Request) error {
	m, err := s.member(req)
	if err != nil {
		return err
	}
	s.leaveRoom(m)
	s.Reply(req, protocol.Left{Campaign: req.Campaign})
	return nil
}

func (s *Session) leaveAll() {
	for _, m := range s.joined {
		s.leaveRoom(m)
	}
}

func (s *Session) leaveRoom(m *member) {
	r := m.room
	delete(s.joined, r.id)
	r.mu.Lock()
	delete(r.members, s)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.hub.drafts.RemovePresence(ctx, r.id, s.id); err != nil {
		s.hub.log.Warn("remove presence", "campaign", r.id, "err", err)
	}
	if s.hub.release(r) {
		s.hub.save(r.ws, r.id, campaign.TriggerLeave)
	}
}

// save asks autosave to flush at once, on a goroutine the hub waits for.
func (h *Hub) save(workspace, id string, trigger campaign.Trigger) {
	if h.saver == nil {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.saver.Save(ctx, workspace, id, trigger); err != nil {
			h.log.Warn("save", "campaign", id, "trigger", trigger, "err", err)
		}
	}()
}

func (s *Session) tab(req *protocol.Request) error {
	m, err := s.member(req)
	if err != nil {
		return err
	}
	if len(req.Tab) > 64 {
		return errcode.New(errcode.Invalid, "tab name too long")
	}
	m.tab = req.Tab
	if err := s.hub.drafts.SetPresence(s.ctx, m.room.id, m.presence()); err != nil {
		return err
	}
	s.Reply(req, protocol.OK{Campaign: req.Campaign})
	s.hub.save(m.room.ws, m.room.id, campaign.TriggerTab)
	return nil
}

// focus shows in the session's presence which field its user is in. It
// changes nothing else, so viewers may send it too.
func (s *Session) focus(req *protocol.Request) error {
	m, err := s.member(req)
	if err != nil {
		return err
	}
	if len(req.Path) > 256 {
		return errcode.New(errcode.Invalid, "focus path too long")
	}
	if req.Path != "" {
		if _, err := campaign.ParsePointer(req.Path); err != nil {
			return errcode.New(errcode.Invalid, "focus path: %v", err)
		}
	}
	if m.field != req.Path {
		m.field = req.Path
		if err := s.hub.drafts.SetPresence(s.ctx, m.room.id, m.presence()); err != nil {
			return err
		}
	}
	s.Reply(req, protocol.OK{Campaign: req.Campaign})
	return nil
}

func (s *Session) edit(req *protocol.Request) error {
	m, err := s.member(req)
	if err != nil {
		return err
	}
	if !s.claims.Role.CanEdit() {
		return errcode.New(errcode.Forbidden, "a %s cannot edit", s.claims.Role)
	}
	if req.Base == nil {
		return errcode.New(errcode.Invalid, "edit needs base, the rev the client last applied")
	}
	ops, err := campaign.ParsePatch(req.Ops)
	if err != nil {
		return err
	}
	id, err := req.BatchID()
	if err != nil {
		return err
	}
	_, err = m.room.edit(s.ctx, m, req, ops, *req.Base, id)
	return err
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
	size := r.size + ch.SizeDelta
	ch.Undo()
	r.mu.Unlock()
	if max := r.hub.cfg.Limits.MaxDocBytes; size > max {
		return false, errcode.New(errcode.TooLarge, "the campaign document would be %d bytes, over the %d limit", size, max)
	}

	opsJSON, err := json.Marshal(ops)
	if err != nil {
		return false, errcode.New(errcode.Invalid, "ops: %v", err)
	}
	c := s.Claims()
	sentAt := time.Now()
	prefix, suffix := protocol.Update{Campaign: r.id, Ops: opsJSON, By: protocol.Author{User: c.User, Name: c.Name, Session: s.id},
		ID: id, At: sentAt}.Frame()
	res, err := r.commit(draft.Batch{Workspace: r.ws, Campaign: r.id, Epoch: epoch, Base: base,
		Session: s.id, User: c.User, ID: id, Prefix: prefix, Suffix: suffix, Keys: keys, Writes: writes})
	if err != nil {
		return false, err
	}
	switch res.Outcome {
	case draft.Accepted, draft.Duplicate:
		if res.Outcome == draft.Accepted {
			metrics.Edits.Inc()
			// This node holds the batch parsed already: no need to decode
			// the message it just framed.
			u := &draft.Update{Rev: res.Rev, Ops: ops, At: sentAt.UnixMilli()}
			u.By.User, u.By.Session = c.User, s.id
			r.deliver(protocol.JoinFrame(prefix, res.Rev, suffix), u)
		} else if err := r.fill(ctx, res.Rev); err != nil {
			return false, err
		}
		if res.Rev > m.lastAck {
			m.lastAck = res.Rev
		}
		ack := protocol.Encode(req.Ref, protocol.Ack{Campaign: r.id, Rev: res.Rev, Duplicate: res.Outcome == draft.Duplicate})
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
