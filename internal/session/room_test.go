package session

import (
	"fmt"
	"testing"

	"github.com/collab-dev/collab/internal/draft"
)

// Updates held ahead of a gap are bounded: past maxPending the room drops
// them and marks itself for a rebuild instead of growing without end.
func TestPendingIsBounded(t *testing.T) {
	r := &room{pending: map[int64]committed{}, kick: make(chan struct{}, 1)}
	for rev := int64(2); rev < 2+maxPending; rev++ {
		r.deliverLocked(committed{msg: []byte(fmt.Sprintf(`{"type":"update","campaign":"c","rev":%d,"ops":[]}`, rev))})
	}
	if len(r.pending) != maxPending || r.broken {
		t.Fatalf("pending %d, broken %v", len(r.pending), r.broken)
	}
	r.deliverLocked(committed{msg: []byte(fmt.Sprintf(`{"type":"update","campaign":"c","rev":%d,"ops":[]}`, 2+maxPending))})
	if len(r.pending) != 0 || !r.broken {
		t.Fatalf("over the bound: pending %d, broken %v", len(r.pending), r.broken)
	}
	if len(r.kick) != 1 {
		t.Fatal("the room goroutine was not asked to rebuild")
	}
}

// A room keeps at most maxMarks marks while its draft goes unsaved; past
// it the oldest half goes and marksFrom says from where Held can answer.
// A save trims what it covers, and never past the room's own rev.
func TestMarksAreBounded(t *testing.T) {
	r := &room{}
	u := &draft.Update{}
	u.By.User = "ann"
	for rev := int64(1); rev <= maxMarks+1; rev++ {
		r.markLocked(rev, u)
		r.rev = rev
	}
	if len(r.marks) != maxMarks/2+1 || r.marksFrom != maxMarks/2 || r.marks[0].rev != maxMarks/2+1 {
		t.Fatalf("after %d entries: %d marks from %d (first %d)", maxMarks+1, len(r.marks), r.marksFrom, r.marks[0].rev)
	}
	r.trimMarksLocked(maxMarks)
	if len(r.marks) != 1 || r.marksFrom != maxMarks {
		t.Fatalf("after a save at %d: %d marks from %d", maxMarks, len(r.marks), r.marksFrom)
	}
	r.trimMarksLocked(maxMarks + 10) // a save the room has not delivered yet
	if len(r.marks) != 0 || r.marksFrom != maxMarks+1 {
		t.Fatalf("after a save ahead of the room: %d marks from %d", len(r.marks), r.marksFrom)
	}
}
