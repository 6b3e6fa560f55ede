package draft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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

// Apply runs the edit script for b and, in the same round trip, marks the
// campaign dirty for autosave (outside the script, because the dirty set is
// not in the campaign's hash slot).
func (b *Buffer) Apply(ctx context.Context, batch Batch) (Result, error) {
	// Every batch has a dedup key, the client's id or one of the server's
	// own, and every call a nonce: the client library retries a call whose
	// reply it did not get (a timeout), and after the link heals both copies
	// may run. The second finds the first's entry; when the nonce is ours it
	// is the same call, accepted once.
	dedup := "\x01" + batch.Session + "\x00" + newEpoch()
	if batch.ID != "" {
		dedup = batch.User + "\x00" + batch.ID
	}
	return b.applyOnce(ctx, batch, newEpoch(), dedup)
}

func (b *Buffer) applyOnce(ctx context.Context, batch Batch, nonce, dedup string) (Result, error) {
	k := b.keys(batch.Campaign)
	now := time.Now().UnixMilli()
	args := make([]any, 0, 10+2*len(batch.Keys))
	var maxLog any = b.opts.MaxLog
	if batch.CheckOnly {
		maxLog, dedup = "check", ""
	}
	args = append(args, batch.Epoch, batch.Base, batch.Session, dedup, batch.Prefix, batch.Suffix, now, k.channel, maxLog, nonce)
	for i, key := range batch.Keys {
		w := "t"
		if batch.Writes[i] {
			w = "w"
		}
		args = append(args, key, w)
	}
	ks := []string{k.meta, k.paths, k.log, k.ids}
	run := func(useSHA bool) (*redis.Cmd, error) {
		var cmd *redis.Cmd
		_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if useSHA {
				cmd = editScript.EvalSha(ctx, p, ks, args...)
			} else {
				cmd = editScript.Eval(ctx, p, ks, args...)
			}
			if !batch.CheckOnly {
				p.ZAddNX(ctx, b.DirtyKey(), redis.Z{Score: float64(now), Member: batch.Campaign})
			}
			return nil
		})
		return cmd, err
	}
	cmd, err := run(true)
	if err != nil && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, err = run(false)
	}
	if err != nil {
		if cmd != nil && cmd.Err() != nil {
			err = cmd.Err()
		}
		return Result{}, unavailable("apply edit to "+batch.Campaign, err)
	}
	res, err := cmd.StringSlice()
	if err != nil || len(res) < 2 {
		return Result{}, unavailable("apply edit to "+batch.Campaign, errors.Join(err, errors.New("short reply")))
	}
	r := Result{Outcome: Outcome(res[0]), Rev: atoi(res[1])}
	switch r.Outcome {
	case Conflict:
		r.Conflicts = res[2:]
	case Duplicate:
		if len(res) > 2 && res[2] == nonce {
			r.Outcome = Accepted // our own call, run twice by a retry
		}
	}
	return r, nil
}

// UpdateFrame returns the Prefix and Suffix of an update message for a
// campaign, given the pre-encoded ops, author and batch id fields, and the
// time the edit was sent to Redis (the "at" field, in Unix milliseconds).
func UpdateFrame(campaign string, opsJSON, byJSON []byte, idJSON []byte, at time.Time) (prefix, suffix string) {
	var sb strings.Builder
	sb.WriteString(`{"type":"update","campaign":`)
	q, _ := json.Marshal(campaign)
	sb.Write(q)
	sb.WriteString(`,"rev":`)
	prefix = sb.String()
	sb.Reset()
	sb.WriteString(`,"ops":`)
	sb.Write(opsJSON)
	sb.WriteString(`,"by":`)
	sb.Write(byJSON)
	if len(idJSON) > 0 {
		sb.WriteString(`,"id":`)
		sb.Write(idJSON)
	}
	sb.WriteString(`,"at":`)
	sb.WriteString(strconv.FormatInt(at.UnixMilli(), 10))
	sb.WriteString(`}`)
	return prefix, sb.String()
}

// FrameRev reads the rev of an update frame as UpdateFrame writes it, without
// decoding the whole message (0 when there is none): rooms order every update
// by it, and load clients follow the campaign with it.
func FrameRev(msg []byte) int64 {
	i := bytes.Index(msg, []byte(`"rev":`))
	if i < 0 {
		return 0
	}
	j := i + 6
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, _ := strconv.ParseInt(string(msg[j:k]), 10, 64)
	return n
}
