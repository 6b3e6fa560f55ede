// Package store defines the durable store: campaigns with their saved draft,
// live content and version history, profiles and audiences. The interface is
// what the rest of collab depends on; sqlstore implements it on SQLite and
// PostgreSQL, and storetest is the conformance suite both must pass.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/campaign"
)

// Campaigns is the campaign half of the durable store. Every method is scoped
// to a workspace: another workspace's campaign is errcode.NotFound.
type Campaigns interface {
	// CreateCampaign stores c as version 1 with its first history entry.
	CreateCampaign(ctx context.Context, c *campaign.Campaign) error
	// Campaign returns the campaign with its saved draft and live content.
	Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error)
	// Campaigns lists a workspace's campaigns, most recently updated first.
	Campaigns(ctx context.Context, workspace string) ([]campaign.Summary, error)
	// Transition applies a lifecycle action (errcode.Conflict when it is not
	// allowed from the current status); launch also makes the draft live.
	Transition(ctx context.Context, workspace, id string, a campaign.Action) (*campaign.Campaign, error)
	// SaveDraft writes a new saved draft and its history entry. It refuses with
	// errcode.Conflict when the stored version is no longer BaseVersion or the
	// stored rev is not below Rev: the first writer wins, and a stale flusher
	// (the rev is its fencing token) can never overwrite a newer draft.
	SaveDraft(ctx context.Context, d DraftSave) (version int64, err error)
	// Publish makes the saved draft of an active campaign live, adding a
	// version; errcode.Conflict for any other status.
	Publish(ctx context.Context, workspace, id, by string) (version int64, err error)
	// Versions lists the history, newest first, without documents.
	Versions(ctx context.Context, workspace, id string) ([]campaign.Version, error)
	// Version returns one history entry with its document.
	Version(ctx context.Context, workspace, id string, version int64) (*campaign.Version, error)
}

// DraftSave is one write of a campaign's saved draft.
type DraftSave struct {
	Workspace   string
	ID          string
	BaseVersion int64
	RevFrom     int64 // first rev this save covers
	Rev         int64 // last rev this save covers; must be above the stored rev
	Doc         json.RawMessage
	By          string
	Authors     []string
	Trigger     campaign.Trigger
	At          time.Time
}

// Store is the whole durable store.
type Store interface {
	Campaigns
	Profiles
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// ImportReport is what an import did, or why it did nothing.
type ImportReport struct {
	// Imported counts the profile lines written (an id twice counts twice;
	// its last line wins).
	Imported int64                 `json:"imported"`
	BadLines int                   `json:"bad_lines"`
	Errors   []*audience.LineError `json:"errors,omitempty"` // the first 100
}

// Profiles is the profile half of the durable store.
type Profiles interface {
	// ImportProfiles upserts (by id, replacing the attributes) every profile
	// next yields until io.EOF, in one transaction: when any line is bad,
	// nothing is written and the report lists the bad lines.
	ImportProfiles(ctx context.Context, workspace string, next func() (audience.Profile, error)) (ImportReport, error)
	// MatchProfiles returns the ids of the workspace's profiles matching r,
	// sorted (for tests and small checks; populations stay in the database).
	MatchProfiles(ctx context.Context, workspace string, r *audience.Rule) ([]string, error)
}
