package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/jsonscan"
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
	Rule     json.RawMessage `json:"rule,omitempty"`
	// KeepOpen makes editor.done a save from inside the full-screen editor:
	// the staged value enters the draft and is saved, the editor stays open.
	KeepOpen bool `json:"keep_open,omitempty"`

	// Raw is the whole frame, for handlers that read fields of their own.
	Raw []byte `json:"-"`
}

// DecodeRequest parses one text frame. It checks what every message needs: a
// JSON object with a string type and, when present, a string or number ref.
// A request with a bad ref comes back with the error, its Ref cleared, so
// the reply can still name the type.
//
// The request's raw fields (Ref, Ops, ID, Value, Rule, Raw) share data's
// memory: data must not change while the request is in use.
func DecodeRequest(data []byte) (*Request, error) {
	req, ok := scanRequest(data)
	if !ok {
		req = new(Request)
		// Unmarshal, not a Decoder: the decoder's read buffer costs about
		// twice the frame per request. A frame it refuses is read again by
		// the decoder, whose reading says what is wrong more plainly.
		if err := json.Unmarshal(data, req); err != nil {
			return nil, malformed(data)
		}
	}
	if req.Type == "" {
		return nil, errcode.New(errcode.Invalid, "message needs a string type")
	}
	if len(req.Ref) > 0 && !validRef(req.Ref) {
		req.Ref = nil
		return req, errcode.New(errcode.Invalid, "ref must be a string or a number")
	}
	req.Raw = data
	return req, nil
}

// scanRequest decodes the frames clients send most without reflection (a
// third of an edit's decoding cost): one object whose keys are exactly
// Request's names, each at most once, with plain strings and integers. It
// gives false on anything else (a null, an escape, an unknown or repeated
// key, a malformed frame), and DecodeRequest then asks encoding/json: what
// the frame means never depends on which of the two read it.
func scanRequest(data []byte) (*Request, bool) {
	req := new(Request)
	var seen uint32
	ok := jsonscan.Object(data, func(key string, v []byte) bool {
		f, known := requestFields[key]
		if !known || seen&f.bit != 0 || v[0] == 'n' {
			return false
		}
		seen |= f.bit
		return f.set(req, v)
	})
	return req, ok
}

// A requestField sets one of Request's fields from its raw value, false
// when the value is not one scanRequest reads (encoding/json then decides).
type requestField struct {
	bit uint32
	set func(r *Request, v []byte) bool
}

// requestFields are Request's JSON names, as scanRequest reads them.
var requestFields = func() map[string]requestField {
	str := func(field func(*Request) *string) func(*Request, []byte) bool {
		return func(r *Request, v []byte) (ok bool) {
			*field(r), ok = jsonscan.Plain(v)
			return ok
		}
	}
	raw := func(field func(*Request) *json.RawMessage) func(*Request, []byte) bool {
		return func(r *Request, v []byte) bool {
			*field(r) = v
			return true
		}
	}
	integer := func(field func(*Request) **int64) func(*Request, []byte) bool {
		return func(r *Request, v []byte) bool {
			n, ok := jsonscan.Int(v)
			*field(r) = &n
			return ok
		}
	}
	count := func(field func(*Request) *int) func(*Request, []byte) bool {
		return func(r *Request, v []byte) bool {
			n, ok := jsonscan.Int(v)
			*field(r) = int(n)
			return ok && int64(int(n)) == n
		}
	}
	setters := map[string]func(*Request, []byte) bool{
		"type":     str(func(r *Request) *string { return &r.Type }),
		"token":    str(func(r *Request) *string { return &r.Token }),
		"campaign": str(func(r *Request) *string { return &r.Campaign }),
		"epoch":    str(func(r *Request) *string { return &r.Epoch }),
		"tab":      str(func(r *Request) *string { return &r.Tab }),
		"path":     str(func(r *Request) *string { return &r.Path }),
		"activity": str(func(r *Request) *string { return &r.Activity }),
		"audience": str(func(r *Request) *string { return &r.Audience }),
		"query":    str(func(r *Request) *string { return &r.Query }),
		"ref":      raw(func(r *Request) *json.RawMessage { return &r.Ref }),
		"ops":      raw(func(r *Request) *json.RawMessage { return &r.Ops }),
		"id":       raw(func(r *Request) *json.RawMessage { return &r.ID }),
		"value":    raw(func(r *Request) *json.RawMessage { return &r.Value }),
		"rule":     raw(func(r *Request) *json.RawMessage { return &r.Rule }),
		"since":    integer(func(r *Request) **int64 { return &r.Since }),
		"base":     integer(func(r *Request) **int64 { return &r.Base }),
		"offset":   count(func(r *Request) *int { return &r.Offset }),
		"limit":    count(func(r *Request) *int { return &r.Limit }),
		"keep_open": func(r *Request, v []byte) bool {
			r.KeepOpen = v[0] == 't'
			return v[0] == 't' || v[0] == 'f'
		},
	}
	fields := make(map[string]requestField, len(setters))
	for name, set := range setters {
		fields[name] = requestField{bit: 1 << len(fields), set: set}
	}
	return fields
}()

// malformed says what is wrong with a frame Unmarshal refused.
func malformed(data []byte) error {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&req); err != nil {
		return errcode.New(errcode.Invalid, "malformed message: %v", err)
	}
	if dec.More() {
		return errcode.New(errcode.Invalid, "malformed message: one JSON object per frame")
	}
	return errcode.New(errcode.Invalid, "malformed message")
}

// cheapRefLimit bounds the frames whose ref is read when the frame itself is
// refused before decoding (rate limited, not UTF-8): reading it must cost
// less than serving the request would.
const cheapRefLimit = 8 << 10

// CheapRef returns a refused frame's ref when the frame is small enough to
// read it cheaply and the ref is well formed; nil otherwise.
func CheapRef(data []byte) json.RawMessage {
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
		if s, ok := jsonscan.Plain(r); ok {
			return len(s) <= 128
		}
		var s string
		return json.Unmarshal(r, &s) == nil && len(s) <= 128
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, err := strconv.ParseFloat(string(r), 64)
		return err == nil
	}
	return false
}

// BatchID returns the edit's id as a string: a client may send a string or
// a number; both name the same batch when resent.
func (r *Request) BatchID() (string, error) {
	if len(r.ID) == 0 || string(r.ID) == "null" {
		return "", nil
	}
	if r.ID[0] == '"' {
		s, ok := jsonscan.Plain(r.ID)
		if ok && len(s) <= 128 {
			return s, nil
		}
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
