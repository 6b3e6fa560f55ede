package session

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/errcode"
)

// Subprotocol is the WebSocket subprotocol a client must offer.
const Subprotocol = "collab.v1"

// SubprotocolBatch is collab.v1 with batched frames: a text frame from the
// server may hold several messages, one JSON object per line ('\n'
// between them; no message contains a raw newline). A client offers it
// before collab.v1; the server picks it when offered. Client frames are
// unchanged: one message each.
const SubprotocolBatch = "collab.v1.batch"

// Close codes a session may end with, besides the standard ones (1000 normal,
// 1001 server going away: reconnect elsewhere, 1008 no valid hello in time,
// 1009 message too big). Codes in 4000-4099 ask the client to reconnect and
// resume with `since`; 4100 and above ask it not to retry without a change.
const (
	// CloseTooSlow: the session's send queue overflowed; rejoin with since.
	CloseTooSlow websocket.StatusCode = 4000
	// CloseTokenExpired: the token's exp passed; reconnect with a new token.
	CloseTokenExpired websocket.StatusCode = 4100
)

// Request is one client message. Every type uses the fields it needs; the
// decoder ignores the rest.
type Request struct {
	Type     string          `json:"type"`
	Ref      json.RawMessage `json:"ref,omitempty"`
	Token    string          `json:"token,omitempty"`
	Campaign string          `json:"campaign,omitempty"`
	Since    *int64          `json:"since,omitempty"`
	Epoch    string          `json:"epoch,omitempty"`
	Base     *int64          `json:"base,omitempty"`
	Ops      json.RawMessage `json:"ops,omitempty"`
	ID       json.RawMessage `json:"id,omitempty"`
	Tab      string          `json:"tab,omitempty"`
	Path     string          `json:"path,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	Activity string          `json:"activity,omitempty"`
	Audience string          `json:"audience,omitempty"`
	Query    string          `json:"query,omitempty"`
	Offset   int             `json:"offset,omitempty"`
	Limit    int             `json:"limit,omitempty"`

	// Raw is the whole frame, for handlers that read fields of their own.
	Raw []byte `json:"-"`
}

// DecodeRequest parses one text frame. It checks what every message needs: a
// JSON object with a string type and, when present, a string or number ref.
func DecodeRequest(data []byte) (*Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&req); err != nil {
		return nil, errcode.New(errcode.Invalid, "malformed message: %v", err)
	}
	if dec.More() {
		return nil, errcode.New(errcode.Invalid, "malformed message: one JSON object per frame")
	}
	if req.Type == "" {
		return nil, errcode.New(errcode.Invalid, "message needs a string type")
	}
	if len(req.Ref) > 0 && !validRef(req.Ref) {
		// Keep the reply free of the bad ref.
		req.Ref = nil
		return &req, errcode.New(errcode.Invalid, "ref must be a string or a number")
	}
	req.Raw = data
	return &req, nil
}

// cheapRefLimit bounds the frames whose ref is read when the frame itself is
// refused before decoding (rate limited, not UTF-8): reading it must cost
// less than serving the request would.
const cheapRefLimit = 8 << 10

// cheapRef returns a refused frame's ref when the frame is small enough to
// read it cheaply and the ref is well formed; nil otherwise.
func cheapRef(data []byte) json.RawMessage {
	if len(data) > cheapRefLimit {
		return nil
	}
	var r struct {
		Ref json.RawMessage `json:"ref"`
	}
	if json.Unmarshal(data, &r) != nil || len(r.Ref) == 0 || !utf8.Valid(r.Ref) || !validRef(r.Ref) {
		return nil
	}
	return r.Ref
}

func validRef(r json.RawMessage) bool {
	switch r[0] {
	case '"':
		var s string
		return json.Unmarshal(r, &s) == nil && len(s) <= 128
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, err := strconv.ParseFloat(string(r), 64)
		return err == nil
	}
	return false
}

// batchID returns the edit's id as a string: a client may send a string or a
// number; both name the same batch when resent.
func (r *Request) batchID() (string, error) {
	if len(r.ID) == 0 || string(r.ID) == "null" {
		return "", nil
	}
	if r.ID[0] == '"' {
		var s string
		if err := json.Unmarshal(r.ID, &s); err != nil || len(s) > 128 {
			return "", errcode.New(errcode.Invalid, "id must be a string of at most 128 bytes or a number")
		}
		return s, nil
	}
	if _, err := strconv.ParseFloat(string(r.ID), 64); err != nil {
		return "", errcode.New(errcode.Invalid, "id must be a string or a number")
	}
	return string(r.ID), nil
}

// Msg is an outgoing message under construction: its type, the ref it
// answers and its fields.
type Msg map[string]any

// encode marshals a reply, adding type and ref.
func encode(typ string, ref json.RawMessage, fields Msg) []byte {
	m := make(Msg, len(fields)+2)
	for k, v := range fields {
		m[k] = v
	}
	m["type"] = typ
	if len(ref) > 0 {
		m["ref"] = ref
	}
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(Msg{"type": "error", "code": errcode.Internal, "message": "cannot encode reply", "ref": ref})
	}
	return b
}

func encodeError(ref json.RawMessage, err error) []byte {
	return encode("error", ref, Msg{"code": errcode.Of(err), "message": errcode.Message(err)})
}

// encodeAck writes an ack without a map and a reflective encode: one goes
// out per accepted edit. ref is a validated string or number, campaign an
// id of the checked alphabet (no escaping needed).
func encodeAck(ref json.RawMessage, campaign string, rev int64, duplicate bool) []byte {
	b := make([]byte, 0, 64+len(ref)+len(campaign))
	b = append(b, `{"type":"ack"`...)
	if len(ref) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, ref...)
	}
	b = append(b, `,"campaign":"`...)
	b = append(b, campaign...)
	b = append(b, `","rev":`...)
	b = strconv.AppendInt(b, rev, 10)
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}
