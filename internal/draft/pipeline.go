package draft

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// editCall is one edit-script call waiting for the node's pipeline.
type editCall struct {
	keys     []string
	args     []any
	campaign string
	dirty    bool // mark the campaign dirty for autosave (not for a CheckOnly call)

	ctx    context.Context
	cmd    *redis.Cmd
	err    error         // the call's failure: its script's, or the dirty mark's
	done   chan struct{} // closed once cmd or err is set
	lead   chan struct{} // a token: this call's caller runs the next pipeline
	handed bool          // a token was sent, or the caller leads already (guarded by pipeline.mu)
}

// maxInFlight bounds the node's edit pipelines in flight. Each costs the
// node one write and one read, and Redis one read and one write, however
// many calls it holds, so calls that arrive while pipelines are out wait
// and go together in the next one: at a hundred busy campaigns that is a
// few round trips instead of a hundred. Two overlap the node's encoding
// of one with Redis's work on the other.
const maxInFlight = 2

// pipeline sends the edit calls of every campaign on the node to Redis in
// pipelines. No goroutine of its own: a caller that finds fewer than
// maxInFlight pipelines out leads one, sending every queued call; when it
// ends, it hands the lead to the first waiting call, so that no caller's
// answer waits behind other campaigns' later calls. A caller that gives up
// (its context) leaves the queue and passes on a lead it was handed.
type pipeline struct {
	rdb redis.UniversalClient
	// dirtyKey is the autosave dirty set: one ZADD NX per pipeline marks
	// every campaign it edits.
	dirtyKey string

	mu      sync.Mutex // guards the following fields
	queue   []*editCall
	running int
	sent    int // pipelines sent, for tests
}

// do sends c in the next pipeline and waits for its answer (c.cmd), or for
// ctx; it returns the call's error.
// A pipeline is bounded by the earliest deadline of the calls it carries.
func (p *pipeline) do(ctx context.Context, c *editCall) error {
	c.ctx = ctx
	if !p.enqueue(c) {
		select {
		case <-c.lead:
		case <-c.done:
			// Taken by a pipeline already; a token sent before that (under
			// the lock, so it is in the channel by now) must still be used.
			select {
			case <-c.lead:
			default:
				return c.err
			}
		case <-ctx.Done():
			p.abandon(c)
			return ctx.Err()
		}
	}
	p.mu.Lock()
	batch := p.queue
	p.queue = nil
	if len(batch) > 0 {
		p.sent++
	}
	p.mu.Unlock()
	if len(batch) > 0 {
		p.send(batch)
	}
	p.mu.Lock()
	p.passLocked()
	p.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues c and reports whether its caller leads a pipeline now.
// A leading call counts as handed: until its caller takes the queue, a
// pipeline that ends must not hand it a second lead, which no one would
// read and whose place would never be given back.
func (p *pipeline) enqueue(c *editCall) (lead bool) {
	c.done = make(chan struct{})
	c.lead = make(chan struct{}, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = append(p.queue, c)
	lead = p.running < maxInFlight
	if lead {
		p.running++
		c.handed = true
	}
	return lead
}

// passLocked hands the lead of a finished pipeline to the first queued
// call that has none, or gives its place up.
func (p *pipeline) passLocked() {
	for _, next := range p.queue {
		if !next.handed {
			next.handed = true
			next.lead <- struct{}{}
			return
		}
	}
	p.running--
}

// abandon takes a call whose caller gave up out of the queue; a lead it
// was handed goes on to another.
func (p *pipeline) abandon(c *editCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.queue, c); i >= 0 {
		p.queue = slices.Delete(p.queue, i, i+1)
	}
	if c.handed {
		p.passLocked()
	}
}

// send runs a batch of calls in one pipeline (EVALSHA each, then EVAL for
// those Redis did not have the script for) and answers each call.
func (p *pipeline) send(batch []*editCall) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	// The pipeline ends by the earliest deadline among its calls (a stalled
	// link fails them together); the client's own timeouts bound the rest.
	ctx := context.Background()
	var soonest time.Time
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && (soonest.IsZero() || d.Before(soonest)) {
			soonest = d
		}
	}
	if !soonest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, soonest)
		defer cancel()
	}
	run := func(calls []*editCall, useSHA bool) {
		var mark *redis.Cmd
		p.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error { // each command's error is its own
			var dirty []string
			for _, c := range calls {
				if useSHA {
					c.cmd = editScript.EvalSha(ctx, pp, c.keys, c.args...)
				} else {
					c.cmd = editScript.Eval(ctx, pp, c.keys, c.args...)
				}
				if c.dirty {
					dirty = append(dirty, c.campaign)
				}
			}
			if len(dirty) > 0 {
				mark = markDirty(ctx, pp, p.dirtyKey, time.Now(), dirty...)
			}
			return nil
		})
		for _, c := range calls {
			c.err = c.cmd.Err()
			if c.err == nil && c.dirty && mark.Err() != nil {
				// The script ran but the dirty mark failed: the edit is in
				// the log and autosave would not see it.
				c.err = mark.Err()
			}
		}
	}
	run(batch, true)
	var again []*editCall
	for _, c := range batch {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		run(again, false)
	}
}
