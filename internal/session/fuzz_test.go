package session

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeRequest: any frame decodes or is refused, never panics; a
// decoded request always has a type, and a bad ref is never echoed.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"type":"hello","token":"x"}`, `{"type":"edit","campaign":"c","base":1,"ops":[],"id":5,"ref":"r"}`,
		`{"type":"join","ref":{"a":1}}`, `[1]`, `{"type":""}`, `{"type":"x"}{"type":"y"}`, `{"type":"tab","ref":1e400}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(data)
		if err == nil && req.Type == "" {
			t.Fatal("accepted a request without a type")
		}
		if req != nil && len(req.Ref) > 0 && !validRef(req.Ref) {
			t.Fatalf("kept a bad ref %s", req.Ref)
		}
		if req != nil {
			req.batchID()
		}
	})
}

// The hand-written ack is the JSON the generic encoder writes.
func TestEncodeAck(t *testing.T) {
	for _, tc := range []struct {
		ref string
		dup bool
	}{{`"r1"`, false}, {`42`, true}, {``, false}} {
		got := encodeAck(json.RawMessage(tc.ref), "c_1-x", 17, tc.dup)
		fields := Msg{"campaign": "c_1-x", "rev": int64(17)}
		if tc.dup {
			fields["duplicate"] = true
		}
		want := encode("ack", json.RawMessage(tc.ref), fields)
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("ack %s, want %s", got, want)
		}
	}
}
