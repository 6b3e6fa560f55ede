package session

import "sync"

// queue is a session's outgoing messages, bounded in bytes. Pushing never
// blocks: a push that would overflow the bound fails, and the session is
// then closed as too slow instead of ever stalling the room that fans out.
type queue struct {
	mu     sync.Mutex // guards the following fields
	msgs   [][]byte
	bytes  int
	closed bool

	limit  int
	notify chan struct{} // one pending wake-up for the writer
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, notify: make(chan struct{}, 1)}
}

// push appends msg; false when the queue is over its bound or closed.
func (q *queue) push(msg []byte) bool {
	q.mu.Lock()
	if q.closed || q.bytes+len(msg) > q.limit && len(q.msgs) > 0 {
		q.mu.Unlock()
		return false
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

// take removes and returns everything queued.
func (q *queue) take(into [][]byte) [][]byte {
	q.mu.Lock()
	into = append(into, q.msgs...)
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	q.bytes = 0
	q.mu.Unlock()
	return into
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.msgs, q.bytes = nil, 0
	q.mu.Unlock()
}
