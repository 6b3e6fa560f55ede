package session

import "sync"

// kind tells the queue what a message is, for the two rules that depend on
// it: a snapshot supersedes the updates of its campaign queued before it,
// and snapshots are bounded apart from the rest.
type kind uint8

const (
	kindOther kind = iota
	kindUpdate
	kindSnapshot
)

type outMsg struct {
	b        []byte
	kind     kind
	joined   bool   // b is several messages joined by the batch separator
	campaign string // for updates and snapshots
}

// queue is a session's outgoing messages, bounded in bytes. Pushing never
// blocks: a push that would overflow the bound fails, and the session is
// then closed as too slow instead of ever stalling the room that fans out.
//
// Slowness is judged on what the session fails to drain, not on one large
// message: snapshots (up to a whole document each) count against a bound of
// their own, and a snapshot drops the queued updates of its campaign, which
// it already contains.
//
// The queue also decides when the session's writer goroutine runs: only
// while there is something to write (a message, a heartbeat, a final
// close), so an idle session costs no goroutine but its reader. Deciding
// under the same lock as the messages leaves no lost wake-up.
type queue struct {
	mu        sync.Mutex // guards the following fields
	msgs      []outMsg
	bytes     int // queued bytes other than snapshots
	snapBytes int
	closed    bool
	beat      bool // a heartbeat is due
	final     *closing
	ending    bool // finish was called: the session is on its way out
	writing   bool // a writer goroutine is running
	// urgent is set while something other than an update is queued (an
	// ack, an error, a snapshot...), and hurry is the writer's signal while
	// it gathers: only a stream of teammates' updates waits out the write
	// delay; what answers the session itself goes at once.
	urgent bool
	hurry  chan struct{}
	// owed is set while the session's own edit is being ordered and nothing
	// answering it is queued yet: teammates' updates then wait for that
	// answer (Session.writer). Any urgent message clears it.
	owed bool

	limit, snapLimit int
	start            func() // starts a writer goroutine; called with mu held
}

// closing is a close the writer performs once it has written everything
// queued before it.
type closing struct {
	code   int
	reason string
}

func newQueue(limit, snapLimit int, start func()) *queue {
	return &queue{limit: limit, snapLimit: snapLimit, start: start}
}

// push appends msg; false when the queue is over its bound or closed (or
// closing).
func (q *queue) push(m outMsg) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.final != nil {
		return false
	}
	if m.kind == kindSnapshot {
		if q.snapBytes > 0 && q.snapBytes+len(m.b) > q.snapLimit {
			return false
		}
		q.dropUpdates(m.campaign)
		q.snapBytes += len(m.b)
	} else {
		if q.bytes > 0 && q.bytes+len(m.b) > q.limit {
			return false
		}
		q.bytes += len(m.b)
	}
	q.msgs = append(q.msgs, m)
	if m.kind != kindUpdate {
		q.hasten()
	}
	q.wake()
	return true
}

// hasten marks the queue urgent and cuts a gathering writer's wait short.
func (q *queue) hasten() {
	q.urgent, q.owed = true, false
	if q.hurry != nil {
		select {
		case q.hurry <- struct{}{}:
		default:
		}
	}
}

// expect marks an answer owed to the session (its edit is on its way to
// Redis), or, with false, no longer owed (the edit ended without one
// queued): that ends a writer's wait for it.
func (q *queue) expect(owed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.owed = owed
	if !owed && q.hurry != nil {
		select {
		case q.hurry <- struct{}{}:
		default:
		}
	}
}

// gather registers *hurry (made on first use) as the signal that ends the
// writer's wait; nil: the wait is over. It reports false, registering
// nothing, when something urgent is queued already, or (forAnswer) when no
// answer is owed any more: the writer should not wait at all.
func (q *queue) gather(hurry *chan struct{}, forAnswer bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if hurry == nil {
		q.hurry = nil
		return true
	}
	if q.urgent || q.final != nil || q.closed || forAnswer && !q.owed {
		return false
	}
	if *hurry == nil {
		*hurry = make(chan struct{}, 1)
	}
	q.hurry = *hurry
	return true
}

// dropUpdates removes the queued updates of a campaign (a snapshot of it
// follows them and contains them).
func (q *queue) dropUpdates(campaign string) {
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if m.kind == kindUpdate && m.campaign == campaign {
			q.bytes -= len(m.b)
			continue
		}
		kept = append(kept, m)
	}
	clear(q.msgs[len(kept):])
	q.msgs = kept
}

// requestHeartbeat asks the writer for a heartbeat.
func (q *queue) requestHeartbeat() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed && q.final == nil {
		q.beat = true
		q.wake()
	}
}

// finish replaces everything queued with last (dropped content is what the
// session may no longer see) and has the writer close with code once it is
// written. Later pushes fail.
func (q *queue) finish(last []byte, code int, reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.final != nil {
		return
	}
	clear(q.msgs)
	q.msgs = append(q.msgs[:0], outMsg{b: last})
	q.bytes, q.snapBytes = len(last), 0
	q.beat = false
	q.final = &closing{code: code, reason: reason}
	q.ending = true
	q.hasten()
	q.wake()
}

func (q *queue) wake() {
	if !q.writing {
		q.writing = true
		q.start()
	}
}

// take hands over everything queued, taking `into` (emptied, cleared by the
// writer; nil after a burst, whose backing array an idle session should not
// keep) for the next pushes, and reports whether a heartbeat
// is due and whether to close after writing. With nothing to do it marks the
// writer stopped and returns done: the writer goroutine must then exit.
func (q *queue) take(into []outMsg) (msgs []outMsg, beat bool, final *closing, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.msgs) == 0 && !q.beat && q.final == nil {
		q.writing = false
		return into, false, nil, true
	}
	// The two slices swap: the writer's emptied one takes the next pushes,
	// so neither side copies or regrows in the steady state.
	msgs, q.msgs = q.msgs, into[:0]
	q.urgent = false
	q.bytes, q.snapBytes = 0, 0
	beat, q.beat = q.beat, false
	final, q.final = q.final, nil
	if final != nil {
		q.closed = true
	}
	return msgs, beat, final, false
}

// finishing reports whether finish was called.
func (q *queue) finishing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ending
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.msgs, q.bytes, q.snapBytes = nil, 0, 0
	q.mu.Unlock()
}
