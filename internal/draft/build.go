package draft

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
)

// Draft is a campaign's working draft: the saved draft plus the log after it.
type Draft struct {
	Saved *campaign.Campaign
	Doc   campaign.Document
	Rev   int64
	Authorship
	// FirstAt is when the oldest unsaved entry was made (zero when none).
	FirstAt time.Time
	// Epoch is the epoch Rev counts in, read with the log: a save of this
	// draft tells that epoch's clients which of their edits are durable.
	Epoch string
}

// Authorship is who made a run of entries, as a save records it: Authors
// are the users in order of their first entry, Last the newest entry's
// user, RestoredFrom the history version the newest restore among them
// brought back (0 when none).
type Authorship struct {
	Authors      []string
	Last         string
	RestoredFrom int64
	seen         map[string]struct{} // Authors as a set: a run may hold many entries
}

// Add counts the next entry of the run.
func (a *Authorship) Add(user string, restored int64) {
	if _, ok := a.seen[user]; !ok {
		if a.seen == nil {
			a.seen = map[string]struct{}{}
		}
		a.seen[user] = struct{}{}
		a.Authors = append(a.Authors, user)
	}
	if restored > 0 {
		a.RestoredFrom = restored
	}
	a.Last = user
}

// Held is a working draft a node keeps current in memory as it delivers the
// log (a session room): what Build would replay, already applied, above a
// saved rev. A timer flush takes it instead of rebuilding the draft.
type Held struct {
	Doc        []byte // the document, encoded
	Rev        int64
	Epoch      string // the epoch Rev counts in, as the holder knows it
	Authorship        // of the entries above the saved rev the holder was asked about
}

// Update is the part of an update message that rebuilding a draft reads.
type Update struct {
	Rev int64         `json:"rev"`
	Ops []campaign.Op `json:"ops"`
	By  struct {
		User    string `json:"user"`
		Session string `json:"session"`
	} `json:"by"`
	At       int64 `json:"at"`
	Restored int64 `json:"restored"`
}

// DecodeUpdate parses an update message.
func DecodeUpdate(msg []byte) (*Update, error) {
	var u Update
	if err := json.Unmarshal(msg, &u); err != nil {
		return nil, fmt.Errorf("decode update: %w", err)
	}
	return &u, nil
}

// Build rebuilds a campaign's working draft from its saved draft and the log
// after its rev. saved is the saved campaign when the caller has read it
// already (nil: load reads it); load reads it again when needed. A flush may land between the two reads and trim
// what is needed; then the saved campaign is read again. A log that does not
// continue the saved draft even so means Redis lost history the store
// depends on: that is an error, never a silent gap.
func (b *Buffer) Build(ctx context.Context, saved *campaign.Campaign, load func(context.Context) (*campaign.Campaign, error)) (*Draft, error) {
	for attempt := 0; ; attempt++ {
		c := saved
		if attempt > 0 || c == nil {
			var err error
			if c, err = load(ctx); err != nil {
				return nil, err
			}
		}
		entries, epoch, err := b.logAndEpoch(ctx, c.ID, c.Rev)
		if err != nil {
			return nil, err
		}
		if len(entries) > 0 && entries[0].Rev != c.Rev+1 {
			if attempt < 3 {
				continue
			}
			return nil, errcode.New(errcode.Unavailable, "campaign %s: the draft log does not continue the saved draft (saved rev %d, log starts at %d)", c.ID, c.Rev, entries[0].Rev)
		}
		doc, err := campaign.ParseDocument(c.Draft)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: saved draft: %w", c.ID, err)
		}
		d := &Draft{Saved: c, Doc: doc, Rev: c.Rev, Epoch: epoch}
		for _, e := range entries {
			if e.Rev != d.Rev+1 {
				break // a concurrent append past our read; the next read gets it
			}
			u, err := DecodeUpdate(e.Msg)
			if err == nil {
				_, err = doc.Apply(u.Ops)
			}
			if err != nil {
				return nil, fmt.Errorf("campaign %s: replay rev %d: %w", c.ID, e.Rev, err)
			}
			if d.FirstAt.IsZero() {
				d.FirstAt = e.At
			}
			d.Add(u.By.User, u.Restored)
			d.Rev = e.Rev
		}
		return d, nil
	}
}
