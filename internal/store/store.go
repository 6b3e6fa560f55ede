// Package store defines the durable store: campaigns with their saved draft,
// live content and version history, profiles and audiences. The interface is
// what the rest of collab depends on; sqlstore implements it on SQLite and
// PostgreSQL, and storetest is the conformance suite both must pass.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/webhook"
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
	// It also refuses an archived campaign (ErrArchived) and a save of
	// another draft epoch than the stored one (ErrEpochFenced).
	SaveDraft(ctx context.Context, d DraftSave) (version int64, err error)
	// FenceEpoch moves the stored draft epoch to next when it is still from
	// and the saved rev still rev (or it is next already); ErrEpochFenced
	// otherwise. A new Redis epoch accepts edits only once this succeeded.
	FenceEpoch(ctx context.Context, workspace, id, from string, rev int64, next string) error
	// Publish makes the saved draft of an active campaign live, adding a
	// version; errcode.Conflict for any other status.
	Publish(ctx context.Context, workspace, id, by string) (version int64, err error)
	// Versions lists the history, newest first, without documents.
	Versions(ctx context.Context, workspace, id string) ([]campaign.Version, error)
	// Version returns one history entry with its document.
	Version(ctx context.Context, workspace, id string, version int64) (*campaign.Version, error)
	// LabelVersion names a history entry ("" removes the name).
	LabelVersion(ctx context.Context, workspace, id string, version int64, label string) error
}

// People remembers the display names the workspace's tokens carry, so that
// what shows a user id (history, webhooks) can show the person's name.
type People interface {
	// SeePerson records user's current name.
	SeePerson(ctx context.Context, workspace, user, name string, at time.Time) error
	// PeopleNames maps the given user ids to their names; unknown ids are
	// left out.
	PeopleNames(ctx context.Context, workspace string, users []string) (map[string]string, error)
}

// Errors callers of SaveDraft and FenceEpoch tell apart (each also carries
// errcode.Conflict).
var (
	ErrArchived    = errors.New("campaign archived")
	ErrEpochFenced = errors.New("draft epoch fenced")
)

// DraftSave is one write of a campaign's saved draft.
type DraftSave struct {
	Workspace   string
	ID          string
	BaseVersion int64
	RevFrom     int64  // first rev this save covers
	Rev         int64  // last rev this save covers; must be above the stored rev
	Epoch       string // the draft epoch Rev counts in; must be the stored one
	Doc         json.RawMessage
	By          string
	Authors     []string
	Trigger     campaign.Trigger
	At          time.Time
	// RestoredFrom is the history version a restore this save covers
	// brought back: the version is recorded as that restore (trigger
	// restore) in the same write, whichever save it is.
	RestoredFrom int64
}

// Webhooks is the outbox half: endpoints per workspace, and the events the
// other halves write in the same transactions as their changes (a save, a
// publish, a status change, a Save audience), with one delivery per
// endpoint each. A rolled-back change leaves no event.
type Webhooks interface {
	CreateEndpoint(ctx context.Context, e webhook.Endpoint) error
	// Endpoints lists a workspace's endpoints, without their secrets.
	Endpoints(ctx context.Context, workspace string) ([]webhook.Endpoint, error)
	DeleteEndpoint(ctx context.Context, workspace, id string) error
	// Events lists a workspace's events with an id above after, oldest first.
	Events(ctx context.Context, workspace string, after int64, limit int) ([]webhook.Event, error)
	// ClaimDeliveries, RecordAttempt and OutboxStats are the deliverer's
	// (outbox.Store).
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]webhook.Delivery, error)
	RecordAttempt(ctx context.Context, a webhook.Attempt) error
	OutboxStats(ctx context.Context) (webhook.Stats, error)
	// Deliveries is an endpoint's delivery log, newest first.
	Deliveries(ctx context.Context, workspace, endpoint string, limit int) ([]webhook.DeliveryLog, error)
	// Replay makes the deliveries of events from..to due again (endpoint ""
	// for all of the workspace's), and returns how many.
	Replay(ctx context.Context, workspace string, from, to int64, endpoint string) (int64, error)
}

// Schemas holds each workspace's JSON Schema for its campaign documents.
type Schemas interface {
	// DocumentSchema returns the workspace's schema, nil when it has none.
	DocumentSchema(ctx context.Context, workspace string) ([]byte, error)
	// SetDocumentSchema replaces it; nil removes it.
	SetDocumentSchema(ctx context.Context, workspace string, raw []byte, by string) error
}

// Store is the whole durable store.
type Store interface {
	Campaigns
	Profiles
	Audiences
	Schedules
	Webhooks
	Schemas
	People
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
	// ProfileCount counts the workspace's profiles.
	ProfileCount(ctx context.Context, workspace string) (int64, error)
	// ProfileAttributes describes the attributes the profiles hold (types,
	// fill rate, frequent values) over about sample profiles; total is
	// ProfileCount's answer.
	ProfileAttributes(ctx context.Context, workspace string, total, sample int64) (audience.Attributes, error)
	// EstimateMatches counts the profiles matching r, exactly up to sample
	// profiles, scaled from a sample of about that many above (exact false).
	EstimateMatches(ctx context.Context, workspace string, r *audience.Rule, total, sample int64) (n int64, exact bool, err error)
}

// AudienceSummary is an audience's row in the Audiences menu.
type AudienceSummary struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	Dimension string    `json:"dimension"`
	Kind      string    `json:"kind"`
	Count     int64     `json:"count"`
	UpdatedAt time.Time `json:"updated"`
	// The last save: which campaign's activity, and who.
	Campaign      string `json:"campaign"`
	Activity      string `json:"activity"`
	ActivityLabel string `json:"activity_label"`
	By            string `json:"by"`
	// Sizes is the count after each of the last saves, oldest first.
	Sizes []AudienceSize `json:"sizes"`
}

// AudienceSize is an audience's count after one save.
type AudienceSize struct {
	At    time.Time `json:"at"`
	Count int64     `json:"count"`
}

// MaxAudienceSizes bounds the size history a list shows per audience.
const MaxAudienceSizes = 20

// AudienceDetail is an audience with a page of its members: rows keyed by
// column, "id" first then the audience's own columns.
type AudienceDetail struct {
	AudienceSummary
	Columns        []string         `json:"columns"`
	Rows           []map[string]any `json:"rows"`
	SourceCampaign string           `json:"source_campaign"`
	CreatedAt      time.Time        `json:"created"`
}

// AudienceSave is one Save audience.
type AudienceSave struct {
	Workspace      string
	Mode           string // create_or_update or update
	Label          string
	AudienceID     string
	UpdateMode     string // replace or append
	SourceCampaign string
	Activity       string // the Save audience activity
	ActivityLabel  string // how it was named then
	By             string // who ran it ("schedule" for a scheduled run)
	Population     audience.Population
	NewID          string // id for a created audience
}

// AudienceSaved is what a Save audience did.
type AudienceSaved struct {
	Audience string `json:"audience"`
	Label    string `json:"label"`
	Created  bool   `json:"created"`
	Count    int64  `json:"count"`
	Added    int64  `json:"added"`
	Removed  int64  `json:"removed"`
}

// Audiences is the audience half of the durable store: populations are
// computed in the database from audience.Population SQL, never in memory.
type Audiences interface {
	Dialect() audience.Dialect
	AudienceColumns(ctx context.Context, workspace, id string) ([]string, error)
	CountPopulation(ctx context.Context, p audience.Population) (int64, error)
	SamplePopulation(ctx context.Context, p audience.Population, limit int) ([]map[string]any, error)
	// SaveAudience creates or updates an audience from a population in one
	// transaction: readers see the old members or the new, never a mix.
	SaveAudience(ctx context.Context, s AudienceSave) (AudienceSaved, error)
	Audiences(ctx context.Context, workspace, query string) ([]AudienceSummary, error)
	Audience(ctx context.Context, workspace, id string, offset, limit int) (*AudienceDetail, error)
	// SaveActivityResult keeps an activity's last result of a kind ("run",
	// "save") as the message sessions receive; ActivityResults returns a
	// campaign's (the newest 200).
	// EachMember streams an audience's members (id order): header gets the
	// columns, fn each member's values in that order, as they are read.
	EachMember(ctx context.Context, workspace, id string, header func(columns []string) error, fn func(values []any) error) error
	SaveActivityResult(ctx context.Context, workspace, campaign, activity, kind string, msg json.RawMessage) error
	ActivityResults(ctx context.Context, workspace, campaign string) ([]json.RawMessage, error)
}

// ScheduledRun is a campaign whose canvas is due to run.
type ScheduledRun struct {
	Campaign  string
	Workspace string
	Spec      string
	Due       time.Time
}

// Schedules is where canvas schedules are kept and claimed. A save (and a
// create) writes its draft's /canvas/schedule spec in its own transaction,
// unplanned when the spec is new; archiving removes it. The scheduler plans
// each new spec's next run on its clock, then claims runs as they fall due.
type Schedules interface {
	// UnplannedSchedules lists the specs whose next run is to be computed.
	UnplannedSchedules(ctx context.Context) ([]ScheduledRun, error)
	// PlanSchedule sets the next run (nil: none) of a schedule still at spec.
	PlanSchedule(ctx context.Context, id, spec string, next *time.Time) error
	// DueSchedules lists the runs due at now.
	DueSchedules(ctx context.Context, now time.Time) ([]ScheduledRun, error)
	// ClaimRun moves a due run to its next occurrence (nil: none) if it is
	// still due: true for the one caller that gets to run it.
	ClaimRun(ctx context.Context, id string, due time.Time, next *time.Time) (bool, error)
}
