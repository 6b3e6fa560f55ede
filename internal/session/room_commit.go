package session

import (
	"context"
	"sync"

	"github.com/collab-dev/collab/internal/draft"
)

// maxGroup bounds the batches of one script call: a call holds Redis for
// the whole group (about 20 µs a batch).
const maxGroup = 128

// committer is a room's group commit. The edit script costs a round trip
// and a fixed setup per call whatever it carries, so the batches a room's
// sessions send while a call is in flight go together in the next one. No
// goroutine of its own: the first caller leads, commits what is queued,
// and hands the lead to the next waiter when more arrived meanwhile.
type committer struct {
	mu      sync.Mutex // guards the following fields
	queue   []*commitReq
	leading bool // a caller is committing; the others wait
}

type commitReq struct {
	batch draft.Batch
	res   draft.Result
	err   error
	lead  bool // set instead of a result: commit what is queued
	done  chan struct{}
}

// commit has the edit script order b, with whatever other batches of the
// room are waiting, and returns b's result. Each call of the script is
// bounded by the hub's RedisTimeout, so a wait is too.
func (r *room) commit(b draft.Batch) (draft.Result, error) {
	c := &r.commits
	req := &commitReq{batch: b, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.mu.Unlock()
		<-req.done
		if !req.lead {
			return req.res, req.err
		}
		c.mu.Lock()
	} else {
		c.leading = true
	}
	// Leading: commit one group (ours is in it: we are first in line).
	group := c.queue[:min(len(c.queue), maxGroup)]
	c.queue = append([]*commitReq(nil), c.queue[len(group):]...)
	c.mu.Unlock()
	r.commitGroup(group)
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.leading = false
	} else {
		next := c.queue[0]
		next.lead = true
		close(next.done)
	}
	c.mu.Unlock()
	return req.res, req.err
}

// commitGroup runs the script for a group, one call per run of batches of
// the same epoch, and answers every request in it. The first request is the
// leader's own: it reads its result when this returns, without a signal.
func (r *room) commitGroup(group []*commitReq) {
	for start := 0; start < len(group); {
		end := start + 1
		for end < len(group) && group[end].batch.Epoch == group[start].batch.Epoch {
			end++
		}
		run := group[start:end]
		batches := make([]draft.Batch, len(run))
		for i, q := range run {
			batches[i] = q.batch
		}
		ctx, cancel := context.WithTimeout(r.hub.ctx, r.hub.cfg.RedisTimeout)
		res, err := r.hub.drafts.ApplyMany(ctx, batches)
		cancel()
		for i, q := range run {
			if err != nil {
				q.err = err
			} else {
				q.res = res[i]
			}
		}
		start = end
	}
	for _, q := range group[1:] {
		close(q.done)
	}
}
