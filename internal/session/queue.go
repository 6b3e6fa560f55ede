package session

import "sync"

// queue is a session's outgoing messages, bounded in bytes. Pushing never
// blocks: a push that would overflow the bound fails, and the session is
// then closed as too slow instead of ever stalling the room that fans out.
//
// The queue also decides when the session's writer goroutine runs: only
// while there is something to write (a message or a keepalive ping), so an
// idle session costs no goroutine but its reader. Deciding under the same
// lock as the messages leaves no lost wake-up.
type queue struct {
	mu      sync.Mutex // guards the following fields
	msgs    [][]byte
	bytes   int
	closed  bool
	ping    bool // a keepalive ping is due
	writing bool // a writer goroutine is running

	limit int
	start func() // starts a writer goroutine; called with mu held
}

func newQueue(limit int, start func()) *queue {
	return &queue{limit: limit, start: start}
}

// push appends msg; false when the queue is over its bound or closed.
func (q *queue) push(msg []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.bytes+len(msg) > q.limit && len(q.msgs) > 0 {
		return false
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg)
	q.wake()
	return true
}

// requestPing asks the writer for a keepalive ping.
func (q *queue) requestPing() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.ping = true
		q.wake()
	}
}

func (q *queue) wake() {
	if !q.writing {
		q.writing = true
		q.start()
	}
}

// take moves everything queued into `into` and reports whether a ping is
// due. With nothing to do it marks the writer stopped and returns done: the
// writer goroutine must then exit.
func (q *queue) take(into [][]byte) (msgs [][]byte, ping, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 && !q.ping || q.closed {
		q.writing = false
		return into, false, true
	}
	into = append(into, q.msgs...)
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	q.bytes = 0
	ping, q.ping = q.ping, false
	return into, ping, false
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.msgs, q.bytes = nil, 0
	q.mu.Unlock()
}
