// Package campaign is collab's domain: a campaign, its lifecycle, its JSON
// document, the JSON Pointer paths and JSON Patch edits applied to it, and
// the overlap rule that decides first-writer-wins conflicts. It is pure Go
// with no I/O; the stores, Redis drafts and sessions are built around it.
package campaign

import (
	"encoding/json"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
)

// Status is a campaign's lifecycle state.
type Status string

const (
	Draft    Status = "draft"
	Active   Status = "active"
	Stopped  Status = "stopped"
	Archived Status = "archived"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case Draft, Active, Stopped, Archived:
		return true
	}
	return false
}

// Editable reports whether edits are accepted in this status. Draft and
// active campaigns edit their draft; a stopped campaign still saves edits
// into its draft and stays stopped; only an archived one refuses.
func (s Status) Editable() bool { return s != Archived && s.Valid() }

// Action is a lifecycle transition requested over HTTP.
type Action string

const (
	Launch  Action = "launch"
	Stop    Action = "stop"
	Resume  Action = "resume"
	Archive Action = "archive"
)

// ParseAction returns the action named s.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case Launch, Stop, Resume, Archive:
		return a, nil
	}
	return "", errcode.New(errcode.NotFound, "unknown lifecycle action %q", s)
}

// Next returns the status after applying a to s, or a conflict error when the
// transition is not allowed from s.
func (s Status) Next(a Action) (Status, error) {
	switch {
	case a == Launch && s == Draft:
		return Active, nil
	case a == Stop && s == Active:
		return Stopped, nil
	case a == Resume && s == Stopped:
		return Active, nil
	case a == Archive && s != Archived:
		return Archived, nil
	}
	return s, errcode.New(errcode.Conflict, "cannot %s a %s campaign", a, s)
}

// CopiesDraftToLive reports whether the transition makes the draft live.
// Launch does; resume keeps the live content as it was.
func (a Action) CopiesDraftToLive() bool { return a == Launch }

// Campaign is one campaign as the durable store holds it.
type Campaign struct {
	ID        string
	Workspace string
	Name      string
	Status    Status
	// Version counts saves: creation is 1 and every flush that writes adds one.
	Version int64
	// Rev is the draft revision the saved draft reflects (edits up to Rev).
	Rev int64
	// Epoch is the draft epoch Rev counts in (the store's fence: a save
	// must name it, and only opening a new epoch moves it).
	Epoch     string
	Draft     json.RawMessage
	Live      json.RawMessage // nil until launched
	CreatedAt time.Time
	UpdatedAt time.Time
	UpdatedBy string
}

// Summary is a campaign's row in a listing.
type Summary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    Status    `json:"status"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated"`
}

// Trigger says why a draft was saved.
type Trigger string

const (
	TriggerCreate   Trigger = "create"
	TriggerTimer    Trigger = "timer"
	TriggerTab      Trigger = "tab"
	TriggerEditor   Trigger = "editor"
	TriggerManual   Trigger = "manual"
	TriggerLeave    Trigger = "leave"
	TriggerShutdown Trigger = "shutdown"
	TriggerPublish  Trigger = "publish"
	TriggerRestore  Trigger = "restore"
	TriggerArchive  Trigger = "archive"
)

// Version is one saved version in a campaign's history.
type Version struct {
	Version int64     `json:"version"`
	RevFrom int64     `json:"rev_from"`
	Rev     int64     `json:"rev"`
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Authors []string  `json:"authors"`
	Trigger Trigger   `json:"trigger"`
	// Label is a name a user gave this version ("Sent to legal").
	Label string `json:"label,omitempty"`
	// RestoredFrom is the version this one brought back, when it is a restore.
	RestoredFrom int64           `json:"restored_from,omitempty"`
	Doc          json.RawMessage `json:"doc,omitempty"`
}

// Limits bounds what a campaign may hold.
type Limits struct {
	MaxDocBytes int
}

// DefaultLimits are the protocol's defaults.
var DefaultLimits = Limits{MaxDocBytes: 1 << 20}
