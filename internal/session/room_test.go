package session

import (
	"fmt"
	"testing"
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
