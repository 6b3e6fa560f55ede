package session

import (
	"context"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/protocol"
)

// Room is a joined campaign as seen by handlers of other packages (autosave,
// audience): enough to read the working draft and to edit it through the
// same first-writer-wins path as a client's edit.
type Room struct{ m *member }

// Campaign is the campaign's id.
func (r *Room) Campaign() string { return r.m.room.id }

// Workspace is the campaign's workspace.
func (r *Room) Workspace() string { return r.m.room.ws }

// Read runs fn with the working draft (unsaved edits included) and its rev.
// fn must not keep doc or block.
func (r *Room) Read(fn func(doc campaign.Document, rev int64)) {
	r.m.room.mu.Lock()
	defer r.m.room.mu.Unlock()
	fn(r.m.room.doc, r.m.room.rev)
}

// Edit applies ops for the session as an ordinary edit at base, replying
// to req as an edit would (ack or refresh). accepted says whether the batch
// is now in the draft.
func (r *Room) Edit(ctx context.Context, req *protocol.Request, ops []campaign.Op, base int64, id string) (accepted bool, err error) {
	return r.m.room.edit(ctx, r.m, req, ops, base, id)
}

// Unsaved reports whether the working draft holds edits the durable store
// does not have yet (a run over it says so).
func (r *Room) Unsaved() bool {
	r.m.room.mu.Lock()
	defer r.m.room.mu.Unlock()
	return r.m.room.rev > r.m.room.saved
}

// Status is the campaign's lifecycle status as this node knows it.
func (r *Room) Status() campaign.Status {
	r.m.room.mu.Lock()
	defer r.m.room.mu.Unlock()
	return r.m.room.status
}

// SetEditing records the path the session has open in a full-screen editor
// ("" when none) in its presence.
func (r *Room) SetEditing(ctx context.Context, path string) error {
	r.m.editing = path
	return r.m.s.hub.drafts.SetPresence(ctx, r.m.room.id, r.m.presence())
}
