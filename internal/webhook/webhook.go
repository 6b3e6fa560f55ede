// Package webhook is what collab tells the host platform about its
// campaigns: the events, their payloads, the endpoints that receive them,
// the signature over each delivery and the retry schedule. It is pure: the
// store writes events in the same transaction as the change they report
// (a transactional outbox), and the outbox package delivers them.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type is an event type.
type Type string

const (
	CampaignSaved         Type = "campaign.saved"
	CampaignPublished     Type = "campaign.published"
	CampaignStatusChanged Type = "campaign.status_changed"
	AudienceSaved         Type = "audience.saved"
)

// Event is one change, as the outbox holds it. Campaign orders delivery:
// an endpoint gets one campaign's events in the order they were written.
type Event struct {
	ID        int64
	Workspace string
	Type      Type
	Campaign  string
	Payload   []byte // the event's data, JSON
	CreatedAt time.Time
}

// Saved is the data of campaign.saved: every save of one campaign within
// the configured window, merged (the versions and revs it covers, everyone
// whose edits it holds).
type Saved struct {
	Campaign    string    `json:"campaign"`
	Version     int64     `json:"version"`
	FromVersion int64     `json:"from_version"`
	RevFrom     int64     `json:"rev_from"`
	RevTo       int64     `json:"rev_to"`
	Authors     []string  `json:"authors"`
	Trigger     string    `json:"trigger"`
	SavedAt     time.Time `json:"saved_at"`
}

// Merge folds a later save of the same campaign into s.
func (s Saved) Merge(later Saved) Saved {
	s.Version, s.RevTo, s.Trigger, s.SavedAt = later.Version, max(s.RevTo, later.RevTo), later.Trigger, later.SavedAt
	for _, a := range later.Authors {
		if !slices.Contains(s.Authors, a) {
			s.Authors = append(s.Authors, a)
		}
	}
	return s
}

// Published is the data of campaign.published.
type Published struct {
	Campaign string    `json:"campaign"`
	Version  int64     `json:"version"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// StatusChanged is the data of campaign.status_changed.
type StatusChanged struct {
	Campaign string    `json:"campaign"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	At       time.Time `json:"at"`
}

// AudienceSavedData is the data of audience.saved.
type AudienceSavedData struct {
	Audience string    `json:"audience"`
	Label    string    `json:"label"`
	Campaign string    `json:"campaign"`
	Created  bool      `json:"created"`
	Mode     string    `json:"mode"` // replace or append
	Count    int64     `json:"count"`
	Added    int64     `json:"added"`
	Removed  int64     `json:"removed"`
	At       time.Time `json:"at"`
}

// Endpoint is where a workspace's events go. Secret signs every delivery.
type Endpoint struct {
	ID        string    `json:"id"`
	Workspace string    `json:"-"`
	URL       string    `json:"url"`
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// CheckURL refuses what an endpoint URL cannot be: anything but an
// absolute http(s) URL with a host, without credentials.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("url %q: %v", raw, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("url %q: http or https only", raw)
	case u.Host == "":
		return fmt.Errorf("url %q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("url %q: no credentials in the URL; deliveries are signed instead", raw)
	case len(raw) > 2048:
		return fmt.Errorf("url over 2048 bytes")
	}
	return nil
}

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	Event
	Endpoint string
	URL      string
	Secret   string
	Attempts int // attempts made before this one
}

// Key is the delivery's idempotency key: the same for every attempt (and
// every replay) of one event, so a receiver applies each event once.
func (e Event) Key() string { return "evt_" + strconv.FormatInt(e.ID, 10) }

// Body is what is POSTed: the event's envelope around its data.
func (e Event) Body() []byte {
	var b strings.Builder
	b.WriteString(`{"id":"`)
	b.WriteString(e.Key())
	b.WriteString(`","type":"`)
	b.WriteString(string(e.Type))
	b.WriteString(`","workspace":`)
	ws, _ := json.Marshal(e.Workspace)
	b.Write(ws)
	b.WriteString(`,"created_at":"`)
	b.WriteString(e.CreatedAt.UTC().Format(time.RFC3339Nano))
	b.WriteString(`","data":`)
	b.Write(e.Payload)
	b.WriteString("}")
	return []byte(b.String())
}

// State is where a delivery stands.
type State string

const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Failed    State = "failed" // gave up after MaxAttempts; a replay sends it again
)

// Attempt is the outcome of one POST.
type Attempt struct {
	Event    int64
	Endpoint string
	At       time.Time
	Status   int    // HTTP status, 0 when there was no response
	Error    string // what went wrong, "" on success
	Duration time.Duration
	State    State     // the delivery's state after it
	NextAt   time.Time // when Pending: the next attempt
}

// DeliveryLog is a delivery with its attempts, newest first, for the
// delivery log.
type DeliveryLog struct {
	Event       string       `json:"event"`
	Type        Type         `json:"type"`
	Campaign    string       `json:"campaign"`
	State       State        `json:"state"`
	Attempts    int          `json:"attempts"`
	NextAt      *time.Time   `json:"next_at,omitempty"`
	DeliveredAt *time.Time   `json:"delivered_at,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	Tries       []AttemptLog `json:"tries"`
}

// AttemptLog is one attempt in the delivery log.
type AttemptLog struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// Stats are the outbox's figures for metrics.
type Stats struct {
	Pending       int64
	OldestPending time.Time // zero when nothing is pending
	Failed        int64
}

// SignatureHeader names the header carrying Sign's value.
const SignatureHeader = "Collab-Signature"

// Sign returns the signature header value of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under secret>".
// The timestamp is signed too, so a captured delivery cannot be replayed
// later than the receiver's tolerance.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance")
)

// Verify checks a signature header against body, as a receiver does: the
// HMAC must match (in constant time) and the timestamp be within tolerance
// of now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header %q", ErrBadSignature, header)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}

// Retry is the retry schedule: exponential from Base, capped at Max, with
// full jitter (so that a receiver coming back is not hit by every node at
// once), given up after MaxAttempts.
type Retry struct {
	Base, Max   time.Duration
	MaxAttempts int
}

// DefaultRetry retries for about a day: 1 s doubling to 10 min, 150 times.
var DefaultRetry = Retry{Base: time.Second, Max: 10 * time.Minute, MaxAttempts: 150}

// After returns the wait before the next attempt, after `attempts` failed
// ones (1 or more), and whether to try again at all.
func (r Retry) After(attempts int) (time.Duration, bool) {
	if r.MaxAttempts > 0 && attempts >= r.MaxAttempts {
		return 0, false
	}
	d := r.Max
	if shift := attempts - 1; shift < 62 && r.Base <= r.Max>>shift {
		d = r.Base << shift // no overflow: at most Max
	}
	// Full jitter between half and all of it: never a hot loop, never all
	// at once.
	return d/2 + rand.N(d/2+1), true
}
