package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unsafe"

	"github.com/collab-dev/collab/internal/jsonscan"
)

// Author is who made an edit, as an update's "by" carries it. User comes
// last: the load client's tail scan reads it there.
type Author struct {
	Name    string `json:"name"`
	Session string `json:"session"`
	User    string `json:"user"`
}

// Update is an accepted edit, as every other session receives it:
//
//	{"type":"update","campaign":C,"rev":N,"ops":[...][,"restored":V],"by":{...}[,"id":I],"at":T}
//
// The edit script assigns the rev, so an update is framed before its rev is
// known: Frame returns the text before and after it, and Redis joins them.
// Readers rely on this layout: IsUpdate on the prefix, FrameRev on the
// first "rev", the load client's tail scan on by, id and at coming last.
type Update struct {
	Campaign string
	Ops      json.RawMessage // compact JSON array
	By       Author
	ID       string    // the client's batch id, "" when none
	At       time.Time // when the edit was sent to Redis
	// Restored is the history version this edit brings back (0 for an
	// ordinary edit). It travels with the edit in the log, so the save that
	// covers it, whichever it is, records the restore in the same write.
	Restored int64
}

var updatePrefix = []byte(`{"type":"update",`)

// Frame returns the update's text before and after its rev. It is built
// once per accepted edit, so strings are written without reflection, and
// both parts come from one allocation: the bytes are built once, never
// written again, and the two strings are views of them.
func (u Update) Frame() (prefix, suffix string) {
	b := make([]byte, 0, 144+len(u.Campaign)+len(u.Ops)+len(u.By.Name)+len(u.By.Session)+len(u.By.User)+len(u.ID))
	b = append(b, `{"type":"update","campaign":`...)
	b = appendString(b, u.Campaign)
	b = append(b, `,"rev":`...)
	p := len(b)
	b = append(b, `,"ops":`...)
	b = append(b, u.Ops...)
	if u.Restored > 0 {
		b = append(b, `,"restored":`...)
		b = strconv.AppendInt(b, u.Restored, 10)
	}
	b = append(b, `,"by":{"name":`...)
	b = appendString(b, u.By.Name)
	b = append(b, `,"session":`...)
	b = appendString(b, u.By.Session)
	b = append(b, `,"user":`...)
	b = appendString(b, u.By.User)
	b = append(b, '}')
	if u.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, u.ID)
	}
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, u.At.UnixMilli(), 10)
	b = append(b, '}')
	all := unsafe.String(unsafe.SliceData(b), len(b))
	return all[:p], all[p:]
}

// appendString appends s as a JSON string, as encoding/json writes it:
// plain printable ASCII as is, anything else through encoding/json (which
// escapes quotes, controls, HTML characters and invalid UTF-8).
func appendString(b []byte, s string) []byte {
	if !jsonscan.Verbatim(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Encode writes the update at rev: what the edit script stores and
// publishes, joined here for the node that already knows the rev.
func (u Update) Encode(rev int64) []byte {
	prefix, suffix := u.Frame()
	return JoinFrame(prefix, rev, suffix)
}

// JoinFrame puts an update's rev between its prefix and suffix.
func JoinFrame(prefix string, rev int64, suffix string) []byte {
	b := make([]byte, 0, len(prefix)+len(suffix)+20)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, rev, 10)
	return append(b, suffix...)
}

// IsUpdate says whether a frame is an update, by its prefix.
func IsUpdate(msg []byte) bool { return bytes.HasPrefix(msg, updatePrefix) }

// FrameRev reads the rev of an update without decoding the whole message (0
// when there is none): rooms order every update by it, and load clients
// follow the campaign with it.
func FrameRev(msg []byte) int64 {
	// As the server frames an update, the rev follows the campaign id, which
	// holds no quote (campaign ids are [A-Za-z0-9_-]): read it there, and
	// search the whole message only for a message framed otherwise.
	i := -1
	if head := len(updateCampaign); bytes.HasPrefix(msg, updateCampaign) {
		if q := head + bytes.IndexByte(msg[head:], '"') + 1; q > head && q < len(msg) && msg[q] == ',' && bytes.HasPrefix(msg[q+1:], revKey) {
			i = q + 1 + len(revKey)
		}
	}
	if i < 0 {
		j := bytes.Index(msg, revKey)
		if j < 0 {
			return 0
		}
		i = j + len(revKey)
	}
	var n int64
	for k := i; k < len(msg) && msg[k] >= '0' && msg[k] <= '9' && k-i < 18; k++ {
		n = n*10 + int64(msg[k]-'0')
	}
	return n
}

var (
	updateCampaign = []byte(`{"type":"update","campaign":"`)
	revKey         = []byte(`"rev":`)
)

// BatchSeparator separates the messages of one frame on SubprotocolBatch.
const BatchSeparator = '\n'

// NextMessage splits the first message off messages joined by
// BatchSeparator (a batch frame, a pub/sub message of several updates).
func NextMessage(joined []byte) (msg, rest []byte) {
	if i := bytes.IndexByte(joined, BatchSeparator); i >= 0 {
		return joined[:i], joined[i+1:]
	}
	return joined, nil
}
