package protocol

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
)

// Message is a message the server sends. Encode writes it; its JSON is
// {"type": MessageType(), "ref": ..., fields...}.
type Message interface {
	MessageType() string
}

// Encode writes m as one JSON object with its type and, when ref is not
// empty, the ref of the request it answers (a validated string or number).
// The two messages sent per edit (ack, update) take hand-written paths; the
// others are marshalled from their struct, in field order.
func Encode(ref json.RawMessage, m Message) []byte {
	switch v := m.(type) {
	case Ack:
		return EncodeAck(ref, v)
	case Refresh:
		if v.Paths == nil {
			v.Paths = []string{}
		}
		if v.Values == nil {
			v.Values = map[string]any{}
		}
		m = v
	}
	body, err := json.Marshal(m)
	if err != nil {
		body, _ = json.Marshal(Error{Code: errcode.Internal, Message: "cannot encode reply"})
		m = Error{}
	}
	typ := m.MessageType()
	b := make([]byte, 0, len(body)+len(typ)+len(ref)+16)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if len(ref) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, ref...)
	}
	if len(body) > 2 {
		b = append(b, ',')
		return append(b, body[1:]...)
	}
	return append(b, '}')
}

// Welcome answers hello.
type Welcome struct {
	User      string `json:"user"`
	Name      string `json:"name"`
	Workspace string `json:"workspace"`
	Role      string `json:"role"`
	Session   string `json:"session"`
}

// Snapshot is a campaign's whole working draft: the answer to a join that
// cannot resume, and the state after a resync.
type Snapshot struct {
	Campaign     string          `json:"campaign"`
	Status       string          `json:"status"`
	Rev          int64           `json:"rev"`
	Epoch        string          `json:"epoch"`
	Doc          json.RawMessage `json:"doc"`
	Version      int64           `json:"version"`
	SavedRev     int64           `json:"saved_rev"`
	EpochStart   int64           `json:"epoch_start"`
	Editors      []Editor        `json:"editors"`
	EditorsTotal int             `json:"editors_total"`
	// Results are the canvas's last activity.result and audience.saved
	// messages, as they were pushed: a late joiner sees the same counts.
	Results []json.RawMessage `json:"results,omitempty"`
}

// Joined ends a resumed join: the missed updates came before it.
type Joined struct {
	Campaign string `json:"campaign"`
	Rev      int64  `json:"rev"`
	Epoch    string `json:"epoch"`
}

// Left answers leave.
type Left struct {
	Campaign string `json:"campaign"`
}

// OK answers a command with nothing else to say (tab, focus, editor.*):
// Path names the editor's path, Staged what this user staged there before.
type OK struct {
	Campaign string          `json:"campaign"`
	Path     string          `json:"path,omitempty"`
	Staged   json.RawMessage `json:"staged,omitempty"`
}

// Ack accepts an edit at Rev; Duplicate says it was a resent batch that was
// applied before (Rev is its original rev).
type Ack struct {
	Campaign  string `json:"campaign"`
	Rev       int64  `json:"rev"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// EncodeAck is Encode for an ack, in one allocation and without boxing the
// ack in a Message.
func EncodeAck(ref json.RawMessage, a Ack) []byte {
	return appendAck(make([]byte, 0, 64+len(ref)+len(a.Campaign)), ref, a)
}

// appendAck writes an ack without reflection: one goes out per accepted
// edit. Campaign ids are of the checked alphabet (no escaping needed).
func appendAck(b []byte, ref json.RawMessage, a Ack) []byte {
	b = append(b, `{"type":"ack"`...)
	if len(ref) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, ref...)
	}
	b = append(b, `,"campaign":"`...)
	b = append(b, a.Campaign...)
	b = append(b, `","rev":`...)
	b = strconv.AppendInt(b, a.Rev, 10)
	if a.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// Refresh reasons.
const (
	ReasonConflict = "conflict" // another session's write won: Values has the winner's
	ReasonGap      = "gap"      // history lost or beyond the kept log: a snapshot follows
	ReasonRestored = "restored" // a history version was restored: a snapshot follows
)

// Refresh tells a session its view is stale: Paths (conflict keys) and
// their current Values on a conflict; empty on a gap or a restore.
type Refresh struct {
	Campaign string         `json:"campaign"`
	Rev      int64          `json:"rev"`
	Reason   string         `json:"reason"`
	Paths    []string       `json:"paths"`
	Values   map[string]any `json:"values"`
	Version  int64          `json:"version,omitempty"` // the version restored
	By       *Author        `json:"by,omitempty"`      // who restored it
}

// Saved says the draft up to Rev is durable as Version.
type Saved struct {
	Campaign string `json:"campaign"`
	Version  int64  `json:"version"`
	Rev      int64  `json:"rev"`
	At       string `json:"at"` // RFC 3339, UTC
	Trigger  string `json:"trigger"`
	Epoch    string `json:"epoch,omitempty"` // the epoch Rev counts in
}

// FormatTime is how every time on the wire is written.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Published says an active campaign's draft went live as Version.
type Published struct {
	Campaign string `json:"campaign"`
	Version  int64  `json:"version"`
	Rev      int64  `json:"rev"`
}

// Status is a campaign's lifecycle change.
type Status struct {
	Campaign string `json:"campaign"`
	Status   string `json:"status"`
}

// CampaignListed is a change to the workspace's campaign list, pushed to
// the sessions that watch it: a campaign created, renamed or moved to
// another status. Only the fields that changed are set besides the id; Rev
// orders renames (a session keeps the name of the highest rev it saw).
type CampaignListed struct {
	Workspace string `json:"workspace"`
	Change    string `json:"change"` // created, renamed, status
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Status    string `json:"status,omitempty"`
	Rev       int64  `json:"rev,omitempty"`
	By        string `json:"by,omitempty"`
	At        int64  `json:"at"` // unix ms
}

// Changes a CampaignListed reports.
const (
	ListCreated = "created"
	ListRenamed = "renamed"
	ListStatus  = "status"
)

// Editor is one session's presence entry.
type Editor struct {
	User    string `json:"user"`
	Name    string `json:"name"`
	Session string `json:"session"`
	Tab     string `json:"tab"`
	Editing string `json:"editing"` // path open in a full-screen editor, or ""
	Field   string `json:"field"`   // path of the form field the user is in, or ""
}

// Presence is the campaign's presence list (at most 50 entries, active
// first) and how many sessions there are.
type Presence struct {
	Campaign     string   `json:"campaign"`
	Editors      []Editor `json:"editors"`
	EditorsTotal int      `json:"editors_total"`
}

// PresenceChanged is what a campaign channel carries when its presence list
// changed (the presence script publishes it): rooms read the list then.
// It never reaches a client.
const PresenceChanged = `{"type":"presence"}`

// Transition is the population that flowed along one transition in a run.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int64  `json:"count"`
}

// ActivityResult is an activity's run, sent to every session on the
// campaign.
type ActivityResult struct {
	Campaign    string           `json:"campaign"`
	Activity    string           `json:"activity"`
	Count       int64            `json:"count"`
	Columns     []string         `json:"columns"`
	Sample      []map[string]any `json:"sample"`
	Transitions []Transition     `json:"transitions"`
	Outputs     map[string]int64 `json:"outputs,omitempty"` // a split's outputs
	By          string           `json:"by"`
	ByName      string           `json:"by_name,omitempty"`
	At          int64            `json:"at,omitempty"` // unix ms
	// Unsaved says the run read edits the durable store did not hold yet.
	Unsaved bool `json:"unsaved,omitempty"`
}

// ActivityProgress tells the session running an activity how far it got
// (a run is one query per step); it carries the run's ref.
type ActivityProgress struct {
	Campaign string `json:"campaign"`
	Activity string `json:"activity"`
	Step     int    `json:"step"`
	Steps    int    `json:"steps"`
}

// ActivityCancelled answers a run that activity.cancel stopped.
type ActivityCancelled struct {
	Campaign string `json:"campaign"`
	Activity string `json:"activity"`
}

// AudienceSaved is a Save audience run (By is "schedule" for a scheduled
// one), sent to every session on the campaign.
type AudienceSaved struct {
	Campaign string `json:"campaign"`
	Activity string `json:"activity"`
	Audience string `json:"audience"`
	Label    string `json:"label"`
	Created  bool   `json:"created"`
	Count    int64  `json:"count"`
	Added    int64  `json:"added"`
	Removed  int64  `json:"removed"`
	By       string `json:"by"`
	ByName   string `json:"by_name,omitempty"`
	At       int64  `json:"at,omitempty"` // unix ms
	// Transitions are the counts along every transition feeding the save.
	Transitions []Transition `json:"transitions,omitempty"`
}

// AudienceSummary is one audience in a list.
type AudienceSummary struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	Dimension string    `json:"dimension"`
	Kind      string    `json:"kind"`
	Count     int64     `json:"count"`
	Updated   time.Time `json:"updated"`
	// The last save (campaign, activity, who) and the count after each of
	// the last saves, oldest first.
	Campaign      string          `json:"campaign,omitempty"`
	Activity      string          `json:"activity,omitempty"`
	ActivityLabel string          `json:"activity_label,omitempty"`
	By            string          `json:"by,omitempty"`
	Sizes         json.RawMessage `json:"sizes,omitempty"`
}

// AttributeList answers attributes.list: the workspace's profile
// attributes for the rule builder's picker.
type AttributeList struct {
	Attributes json.RawMessage `json:"attributes"`
	Profiles   int64           `json:"profiles"`
	Sampled    int64           `json:"sampled"`
}

// RuleCount answers audience.count: how many profiles a rule matches (an
// estimate when Exact is false) and the fields it reads that no profile
// holds, each with the attribute it most likely meant.
type RuleCount struct {
	Count    int64           `json:"count"`
	Exact    bool            `json:"exact"`
	Profiles int64           `json:"profiles"`
	Unknown  json.RawMessage `json:"unknown"`
}

// Audiences answers audience.list.
type Audiences struct {
	Audiences []AudienceSummary `json:"audiences"`
}

// Audience answers audience.get: a page of members, keyed by column.
type Audience struct {
	ID        string           `json:"id"`
	Label     string           `json:"label"`
	Dimension string           `json:"dimension"`
	Kind      string           `json:"kind"`
	Columns   []string         `json:"columns"`
	Rows      []map[string]any `json:"rows"`
	Count     int64            `json:"count"`
	Updated   time.Time        `json:"updated"`
}

// Error answers a request that failed, or ends a session (unauthorized
// before close 4100).
type Error struct {
	Code    errcode.Code `json:"code"`
	Message string       `json:"message"`
}

// ErrorOf is the error message for err.
func ErrorOf(err error) Error { return Error{Code: errcode.Of(err), Message: errcode.Message(err)} }

func (Welcome) MessageType() string           { return "welcome" }
func (Snapshot) MessageType() string          { return "snapshot" }
func (Joined) MessageType() string            { return "joined" }
func (Left) MessageType() string              { return "left" }
func (OK) MessageType() string                { return "ok" }
func (Ack) MessageType() string               { return "ack" }
func (Refresh) MessageType() string           { return "refresh" }
func (Saved) MessageType() string             { return "saved" }
func (Published) MessageType() string         { return "published" }
func (Status) MessageType() string            { return "status" }
func (CampaignListed) MessageType() string    { return "campaign" }
func (Presence) MessageType() string          { return "presence" }
func (ActivityResult) MessageType() string    { return "activity.result" }
func (AudienceSaved) MessageType() string     { return "audience.saved" }
func (Audiences) MessageType() string         { return "audiences" }
func (AttributeList) MessageType() string     { return "attributes" }
func (ActivityProgress) MessageType() string  { return "activity.progress" }
func (ActivityCancelled) MessageType() string { return "activity.cancelled" }
func (RuleCount) MessageType() string         { return "count" }
func (Audience) MessageType() string          { return "audience" }
func (Error) MessageType() string             { return "error" }
