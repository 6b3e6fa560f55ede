// Package commands registers the features' session commands on the hub:
// autosave's (save, publish, editor.*) and the audience canvas's
// (activity.run, audience.*). It is the one package that knows both the
// transport (session) and the features, so that autosave and audience stay
// free of it: each command reads the request, calls a feature through a
// small interface, and answers with a protocol message.
package commands

import (
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
)

// editorRoom returns the request's joined room for a command that changes
// the campaign: editors and admins only.
func editorRoom(s *session.Session, req *protocol.Request) (*session.Room, error) {
	room, err := s.Member(req)
	if err != nil {
		return nil, err
	}
	if !s.Claims().Role.CanEdit() {
		return nil, errcode.New(errcode.Forbidden, "a %s cannot %s", s.Claims().Role, req.Type)
	}
	return room, nil
}
