package autosave

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/draft"
	"github.com/collab-dev/collab/internal/errcode"
)

// Restorer restores history versions as new edits.
type Restorer struct {
	Drafts interface {
		Open(ctx context.Context, workspace, campaign string, savedRev int64, status string, fence func(ctx context.Context, epoch string) error) (draft.Head, error)
		Build(ctx context.Context, load func(context.Context) (*campaign.Campaign, error)) (*draft.Draft, error)
		Apply(ctx context.Context, b draft.Batch) (draft.Result, error)
		Publish(ctx context.Context, campaign string, msg []byte) error
	}
	Store interface {
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
		d, err := r.Drafts.Build(ctx, load)
		if err != nil {
			return 0, err
		}
		ops, keys := topLevelDiff(d.Doc, target)
		if len(ops) == 0 {
			return d.Rev, nil
		}
		opsJSON, _ := json.Marshal(ops)
		session := "restore-" + newToken()
		byJSON, _ := json.Marshal(map[string]string{"user": user, "name": name, "session": session})
		prefix, suffix := draft.UpdateFrame(id, opsJSON, byJSON, nil, time.Now())
		writes := make([]bool, len(keys))
		for i := range writes {
			writes[i] = true
		}
		res, err := r.Drafts.Apply(ctx, draft.Batch{Workspace: workspace, Campaign: id, Epoch: head.Epoch, Base: d.Rev,
			Session: session, User: user, Prefix: prefix, Suffix: suffix, Keys: keys, Writes: writes})
		if err != nil {
			return 0, err
		}
		switch res.Outcome {
		case draft.Accepted:
			msg, _ := json.Marshal(map[string]any{"type": "refresh", "campaign": id, "rev": res.Rev, "reason": "restored",
				"paths": keys, "values": map[string]any{}, "version": v})
			if err := r.Drafts.Publish(ctx, id, msg); err != nil {
				return res.Rev, err
			}
			return res.Rev, nil
		case draft.Conflict, draft.EpochLost, draft.NoBuffer, draft.Restarted, draft.Unfenced:
			continue // an edit slipped in between: diff again
		case draft.Archived:
			return 0, errcode.New(errcode.Conflict, "campaign %s is archived and refuses edits", id)
		default:
			return 0, errcode.New(errcode.Unavailable, "restore %s: %s", id, res.Outcome)
		}
	}
	return 0, errcode.New(errcode.Conflict, "campaign %s is being edited too busily to restore; try again", id)
}

// topLevelDiff returns the ops that turn from into to, one per top-level
// field (the root itself cannot be edited), and their paths.
func topLevelDiff(from, to campaign.Document) ([]campaign.Op, []string) {
	var ops []campaign.Op
	var keys []string
	names := make([]string, 0, len(from)+len(to))
	for k := range from {
		names = append(names, k)
	}
	for k := range to {
		if _, ok := from[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		path := campaign.Pointer{k}
		old, had := from[k]
		val, has := to[k]
		switch {
		case had && !has:
			ops = append(ops, campaign.Op{Op: "remove", Path: path.String()})
		case has:
			raw, _ := json.Marshal(val)
			if had {
				if oldRaw, _ := json.Marshal(old); string(oldRaw) == string(raw) {
					continue
				}
				ops = append(ops, campaign.Op{Op: "replace", Path: path.String(), Value: raw})
			} else {
				ops = append(ops, campaign.Op{Op: "add", Path: path.String(), Value: raw})
			}
		default:
			continue
		}
		keys = append(keys, path.String())
	}
	return ops, keys
}
