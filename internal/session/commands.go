package session

import (
	"context"
	"slices"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
)

// member returns the session's membership of the request's campaign, or the
// error every campaign command answers when the session has not joined.
func (s *Session) member(req *protocol.Request) (*member, error) {
	if m := s.joinedTo(req.Campaign); m != nil {
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
	if s.joinedTo(req.Campaign) != nil {
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
	s.joined = append(s.joined, m)
	if err := s.hub.drafts.SetPresence(ctx, r.id, m.presence()); err != nil {
		s.hub.log.Warn("set presence", "campaign", r.id, "err", err)
	}
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
	for len(s.joined) > 0 {
		s.leaveRoom(s.joined[len(s.joined)-1])
	}
}

func (s *Session) leaveRoom(m *member) {
	r := m.room
	s.joined = slices.DeleteFunc(s.joined, func(x *member) bool { return x == m })
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
	s.out.expect(true)
	_, err = m.room.edit(s.ctx, m, req, ops, *req.Base, id)
	s.out.expect(false)
	return err
}
