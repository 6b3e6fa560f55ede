package draft

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/collab-dev/collab/internal/randid"
)

// Batch is one edit batch ready for the edit script: already validated
// against a draft at least as new as Base by the node that received it.
type Batch struct {
	Workspace string
	Campaign  string
	Epoch     string
	Base      int64
	Session   string
	User      string
	ID        string // client batch id, "" when none
	// Origin tags the node that sends the batch (the first batch's counts
	// for a call): the published updates carry it, so that node can drop
	// its own copy unread. See Updates.
	Origin string
	// Prefix and Suffix frame the update message: Prefix + rev + Suffix is
	// what every other session receives, built once here and never again.
	Prefix, Suffix string
	// Keys are the ops' conflict keys (escaped pointers) and whether each op
	// writes (test does not).
	Keys   []string
	Writes []bool
	// CheckOnly asks whether the batch conflicts, applying nothing (Outcome
	// Valid when it does not). A node uses it when a batch fails validation
	// against a draft newer than its base: if another session changed those
	// paths since, the client deserves a refresh, not a bad_request.
	CheckOnly bool
}

// Outcome is what the edit script decided.
type Outcome string

const (
	Accepted  Outcome = "ok"
	Duplicate Outcome = "dup"       // resent batch id: Rev is the original rev
	Conflict  Outcome = "conflict"  // Conflicts lists the losing keys
	Gap       Outcome = "gap"       // Base is older than the kept history
	Ahead     Outcome = "ahead"     // Base is above the current rev
	EpochLost Outcome = "epoch"     // the buffer has another epoch now
	NoBuffer  Outcome = "noinit"    // the buffer is gone (Redis lost it)
	Restarted Outcome = "restarted" // Redis restarted since the buffer was opened: reopen it
	Unfenced  Outcome = "unfenced"  // a new epoch not yet fenced in the durable store: reopen it
	Archived  Outcome = "archived"
	Full      Outcome = "full"  // the unflushed log is at its bound
	Valid     Outcome = "valid" // CheckOnly: no conflict
)

// Result is the script's answer.
type Result struct {
	Outcome   Outcome
	Rev       int64
	Conflicts []string
}

// Apply runs the edit script for one batch; see ApplyMany.
func (b *Buffer) Apply(ctx context.Context, batch Batch) (Result, error) {
	res, err := b.ApplyMany(ctx, []Batch{batch})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// ApplyMany runs the edit script once for several batches of one campaign
// and epoch (group commit: one round trip and one script call for what
// several sessions sent meanwhile), in order, each checked against what the
// ones before it did. In the same round trip it marks the campaign dirty for
// autosave (outside the script, because the dirty set is not in the
// campaign's hash slot). A CheckOnly batch goes alone.
//
// Every batch has a dedup key, the client's id or one of the server's own,
// and every call a nonce: the client library retries a call whose reply it
// did not get (a timeout), and after the link heals both copies may run.
// The second finds the first's entries; when the nonce is ours it is the
// same call, accepted once.
func (b *Buffer) ApplyMany(ctx context.Context, batches []Batch) ([]Result, error) {
	nonce := randid.New("")
	dedups := make([]string, len(batches))
	for i, batch := range batches {
		// Without a client id, the batch's own nonce is its key: unique, and
		// repeated by a retry of the call.
		dedups[i] = "\x01" + batchNonce(nonce, i)
		if batch.ID != "" {
			dedups[i] = batch.User + "\x00" + batch.ID
		}
	}
	return b.applyOnce(ctx, batches, nonce, dedups)
}

// batchNonce is the nonce of the i-th batch of a call: a retry of the call
// repeats it, a second batch with the same id in one call does not.
func batchNonce(call string, i int) string { return call + "." + strconv.Itoa(i) }

func (b *Buffer) applyOnce(ctx context.Context, batches []Batch, nonce string, dedups []string) ([]Result, error) {
	first := batches[0]
	k := b.keys(first.Campaign)
	now := time.Now().UnixMilli()
	var maxLog any = b.opts.MaxLog
	check := first.CheckOnly
	if check {
		maxLog = "check"
	}
	args := make([]any, 0, 5+len(batches)*12)
	args = append(args, first.Epoch, now, k.channel, maxLog, first.Origin)
	for i, batch := range batches {
		dedup := dedups[i]
		if check {
			dedup = ""
		}
		args = append(args, batch.Base, batch.Session, dedup, batch.Prefix, batch.Suffix, batchNonce(nonce, i), len(batch.Keys))
		for j, key := range batch.Keys {
			w := "t"
			if batch.Writes[j] {
				w = "w"
			}
			args = append(args, key, w)
		}
	}
	call := &editCall{keys: []string{k.meta, k.paths, k.log, k.ids, k.idlog}, args: args, campaign: first.Campaign, dirty: !check}
	if err := b.pipe.do(ctx, call); err != nil {
		return nil, unavailable("apply edit to "+first.Campaign, err)
	}
	res, err := call.cmd.StringSlice()
	if err != nil || len(res) < 3 {
		return nil, unavailable("apply edit to "+first.Campaign, errors.Join(err, errors.New("short reply")))
	}
	out := make([]Result, len(batches))
	if res[0] == "*" {
		for i := range out {
			out[i] = Result{Outcome: Outcome(res[1]), Rev: atoi(res[2])}
		}
		return out, nil
	}
	for i := range out {
		if len(res) < 3 {
			return nil, unavailable("apply edit to "+first.Campaign, errors.New("short reply"))
		}
		n := int(atoi(res[2]))
		if len(res) < 3+n {
			return nil, unavailable("apply edit to "+first.Campaign, errors.New("short reply"))
		}
		r := Result{Outcome: Outcome(res[0]), Rev: atoi(res[1])}
		extra := res[3 : 3+n]
		switch r.Outcome {
		case Conflict:
			r.Conflicts = extra
		case Duplicate:
			if len(extra) == 1 && extra[0] == batchNonce(nonce, i) {
				r.Outcome = Accepted // our own call, run twice by a retry
			}
		}
		out[i] = r
		res = res[3+n:]
	}
	return out, nil
}
