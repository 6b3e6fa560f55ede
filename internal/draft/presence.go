package draft

import (
	"context"
	"encoding/json"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
)

// Presence is one session's entry in a campaign's presence list, kept in
// Redis as the wire shows it.
type Presence = protocol.Editor

func (b *Buffer) presence(ctx context.Context, campaign, op string, args ...any) ([]any, error) {
	k := b.keys(campaign)
	all := append([]any{op, time.Now().UnixMilli(), k.channel, b.opts.PresenceTTL.Milliseconds()}, args...)
	return presenceScript.Run(ctx, b.rdb, []string{k.presence, k.presenceData}, all...).Slice()
}

// SetPresence adds or updates a session's entry and announces the change.
func (b *Buffer) SetPresence(ctx context.Context, campaign string, p Presence) error {
	data, _ := json.Marshal(p)
	_, err := b.presence(ctx, campaign, "set", p.Session, string(data))
	return unavailable("set presence on "+campaign, err)
}

// TouchPresence extends the life of the given sessions' entries; it also
// sweeps expired entries (a dead node's sessions) and announces them.
func (b *Buffer) TouchPresence(ctx context.Context, campaign string, sessions []string) error {
	args := make([]any, len(sessions))
	for i, s := range sessions {
		args[i] = s
	}
	_, err := b.presence(ctx, campaign, "touch", args...)
	return unavailable("touch presence on "+campaign, err)
}

// RemovePresence drops a session's entry and announces it.
func (b *Buffer) RemovePresence(ctx context.Context, campaign, session string) error {
	_, err := b.presence(ctx, campaign, "del", session)
	return unavailable("remove presence on "+campaign, err)
}

// Presence lists the live entries of a campaign, sweeping expired ones.
func (b *Buffer) Presence(ctx context.Context, campaign string) ([]Presence, error) {
	vals, err := b.presence(ctx, campaign, "list")
	if err != nil {
		return nil, unavailable("list presence on "+campaign, err)
	}
	out := make([]Presence, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var p Presence
		if json.Unmarshal([]byte(s), &p) == nil {
			out = append(out, p)
		}
	}
	return out, nil
}
