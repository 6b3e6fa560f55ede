package draft

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/randid"
)

// Restorer restores history versions as new edits: a restore is an edit
// like a client's, ordered by the same script, so first-writer-wins and
// the log hold for it too.
type Restorer struct {
	Drafts *Buffer
	Store  interface {
		Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error)
		Version(ctx context.Context, workspace, id string, version int64) (*campaign.Version, error)
		FenceEpoch(ctx context.Context, workspace, id, from string, rev int64, next string) error
	}
}

// Restore makes version v the working draft again, as an ordinary edit that
// replaces each top-level field (so it can itself be undone by restoring the
// version before it); every session gets refresh "restored" and a fresh
// snapshot. The next autosave saves it. It returns the edit's rev.
func (r *Restorer) Restore(ctx context.Context, workspace, id string, v int64, user, name string) (int64, error) {
	ver, err := r.Store.Version(ctx, workspace, id, v)
	if err != nil {
		return 0, err
	}
	target, err := campaign.ParseDocument(ver.Doc)
	if err != nil {
		return 0, fmt.Errorf("restore %s version %d: %w", id, v, err)
	}
	load := func(ctx context.Context) (*campaign.Campaign, error) { return r.Store.Campaign(ctx, workspace, id) }
	for attempt := 0; attempt < 5; attempt++ {
		saved, err := load(ctx)
		if err != nil {
			return 0, err
		}
		if !saved.Status.Editable() {
			return 0, errcode.New(errcode.Conflict, "campaign %s is %s and refuses edits", id, saved.Status)
		}
		head, err := r.Drafts.Open(ctx, workspace, id, saved.Rev, string(saved.Status), func(ctx context.Context, epoch string) error {
			return r.Store.FenceEpoch(ctx, workspace, id, saved.Epoch, saved.Rev, epoch)
		})
		if errcode.Is(err, errcode.Conflict) {
			continue // the saved draft moved under the fence: read it again
		}
		if err != nil {
			return 0, err
		}
		d, err := r.Drafts.Build(ctx, saved, load)
		if err != nil {
			return 0, err
		}
		ops, keys := campaign.TopLevelDiff(d.Doc, target)
		if len(ops) == 0 {
			return d.Rev, nil
		}
		opsJSON, _ := json.Marshal(ops)
		session := randid.New("restore-")
		prefix, suffix := protocol.Update{Campaign: id, Ops: opsJSON, By: protocol.Author{User: user, Name: name, Session: session}, At: time.Now(), Restored: v}.Frame()
		writes := make([]bool, len(keys))
		for i := range writes {
			writes[i] = true
		}
		res, err := r.Drafts.Apply(ctx, Batch{Workspace: workspace, Campaign: id, Epoch: head.Epoch, Base: d.Rev,
			Session: session, User: user, Prefix: prefix, Suffix: suffix, Keys: keys, Writes: writes})
		if err != nil {
			return 0, err
		}
		switch res.Outcome {
		case Accepted:
			msg := protocol.Encode(nil, protocol.Refresh{Campaign: id, Rev: res.Rev, Reason: protocol.ReasonRestored, Paths: keys, Version: v,
				By: &protocol.Author{User: user, Name: name}})
			if err := r.Drafts.Publish(ctx, id, msg); err != nil {
				return res.Rev, err
			}
			return res.Rev, nil
		case Conflict, EpochLost, NoBuffer, Restarted, Unfenced:
			continue // an edit slipped in between: diff again
		case Archived:
			return 0, errcode.New(errcode.Conflict, "campaign %s is archived and refuses edits", id)
		default:
			return 0, errcode.New(errcode.Unavailable, "restore %s: %s", id, res.Outcome)
		}
	}
	return 0, errcode.New(errcode.Conflict, "campaign %s is being edited too busily to restore; try again", id)
}
