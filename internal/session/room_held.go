package session

import (
	"context"

	"github.com/collab-dev/collab/internal/draft"
)

// mark is what a flush records of one applied entry besides its ops: who
// made it, and the history version it restored (0 for an edit).
type mark struct {
	rev      int64
	user     string
	restored int64
}

// maxMarks bounds the marks a room keeps while its draft goes unsaved (a
// store down for long): past it the oldest half goes, and a flush of an
// older saved rev replays the log instead.
const maxMarks = 8192

// markLocked records an applied entry for the flushes that take the room's
// draft (Held).
func (r *room) markLocked(rev int64, u *draft.Update) {
	if len(r.marks) >= maxMarks {
		drop := len(r.marks) / 2
		r.marksFrom = r.marks[drop-1].rev
		r.marks = append(r.marks[:0], r.marks[drop:]...)
	}
	r.marks = append(r.marks, mark{rev: rev, user: u.By.User, restored: u.Restored})
}

// trimMarksLocked forgets the marks the store holds (rev upto and below).
func (r *room) trimMarksLocked(upto int64) {
	n := 0
	for n < len(r.marks) && r.marks[n].rev <= upto {
		n++
	}
	r.marks = append(r.marks[:0], r.marks[n:]...)
	r.marksFrom = max(r.marksFrom, min(upto, r.rev))
}

// Held returns this node's working draft of a campaign once its room has
// delivered head (Redis's rev and epoch, read under the flush lease), when the
// room holds every entry above the saved rev `above`: the timer flush saves
// it without rebuilding it from the saved draft and the log, and it is the
// same draft, no older. It waits for the room to catch up (a group
// commit's reply on its way, pub/sub) until ctx ends. Not ok when there is
// no room, or it is not loaded, has to reload, counts in another epoch, or
// lost track of entries that old.
func (h *Hub) Held(ctx context.Context, campaign string, above int64, head draft.Head) (draft.Held, bool) {
	h.mu.Lock()
	r := h.rooms[campaign]
	h.mu.Unlock()
	if r == nil {
		return draft.Held{}, false
	}
	type answer struct {
		d  draft.Held
		ok bool
	}
	got := make(chan answer, 1) // the waiter runs under the room lock: it must not block
	r.after(head.Rev, func(delivered bool) {
		var a answer
		if delivered && ctx.Err() == nil { // a caller that gave up gets no encoding
			a.d, a.ok = r.heldLocked(above, head.Epoch)
		}
		got <- a
	})
	select {
	case a := <-got:
		return a.d, a.ok
	case <-ctx.Done():
		return draft.Held{}, false
	}
}

func (r *room) heldLocked(above int64, epoch string) (draft.Held, bool) {
	if !r.loaded || r.broken || r.epoch != epoch || above < r.marksFrom || r.rev <= above {
		return draft.Held{}, false
	}
	doc, err := r.doc.Marshal()
	if err != nil {
		return draft.Held{}, false
	}
	d := draft.Held{Doc: doc, Rev: r.rev, Epoch: r.epoch}
	for _, m := range r.marks {
		if m.rev > above {
			d.Add(m.user, m.restored)
		}
	}
	return d, true
}
