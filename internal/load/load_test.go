package load

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
)

// The fast path reads what a full decode reads, from frames as the server
// writes them.
func TestScanUpdate(t *testing.T) {
	by := protocol.Author{User: "u7", Name: `Ann "A" Lee`, Session: "s1"}
	for _, id := range []string{"3.14.1700000000000000", ""} {
		frame := protocol.Update{Campaign: "c_1", Ops: []byte(`[{"op":"add","path":"/x","value":{"id":"no","user":"no"}}]`), By: by, ID: id, At: time.Now()}.Encode(42)
		rev, gotID, user, ok := scanUpdate(frame)
		var m message
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatal(err)
		}
		if !ok || rev != 42 || rev != m.Rev || gotID != unquote(m.ID) && id != "" || user != "u7" || user != m.By.User {
			t.Fatalf("%s: rev %d id %q user %q ok %v; decoded %+v", frame, rev, gotID, user, ok, m)
		}
	}
	if _, _, _, ok := scanUpdate([]byte(`{"type":"update","rev":x}`)); ok {
		t.Fatal("a malformed rev was read")
	}
}

// The ack fast path reads what a full decode reads from the server's own
// acks, and leaves every other layout to the decode.
func TestScanAck(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		ack  protocol.Ack
		fast bool
	}{
		{`"12.7.1700000000000000"`, protocol.Ack{Campaign: "c_1", Rev: 42}, true},
		{`"12.8.1700000000000001"`, protocol.Ack{Campaign: "c_1", Rev: 41, Duplicate: true}, true},
		{`"a\"b"`, protocol.Ack{Campaign: "c_1", Rev: 3}, false},
		{`7`, protocol.Ack{Campaign: "c_1", Rev: 3}, false},
		{``, protocol.Ack{Campaign: "c_1", Rev: 3}, false},
	} {
		frame := protocol.Encode(json.RawMessage(tc.ref), tc.ack)
		ref, rev, dup, ok := scanAck(frame)
		if ok != tc.fast {
			t.Fatalf("%s: fast path %v, want %v", frame, ok, tc.fast)
		}
		if !ok {
			continue
		}
		var m message
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatal(err)
		}
		if string(ref) != unquote(m.Ref) || rev != m.Rev || dup != m.Duplicate {
			t.Fatalf("%s: ref %q rev %d dup %v; decoded %+v", frame, ref, rev, dup, m)
		}
	}
	for _, bad := range []string{`{"type":"ack","ref":"x","campaign":"c","rev":}`, `{"type":"ack","ref":"x","campaign":"c","rev":1,"more":2}`} {
		if _, _, _, ok := scanAck([]byte(bad)); ok {
			t.Fatalf("%s was read", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	q := h.Quantiles()
	near := func(got, want float64) bool { return got > want*0.97 && got < want*1.03 }
	if q.N != 1000 || !near(q.P50, 500) || !near(q.P90, 900) || !near(q.P99, 990) || q.Max != 1000 {
		t.Fatalf("%+v", q)
	}
}

func TestAcksCheck(t *testing.T) {
	a := NewAcks()
	for _, seq := range []int64{1, 2, 3} {
		a.Record("c", "w0", seq, seq)
	}
	a.Record("c", "w0", 3, 3) // a duplicate ack counts once
	a.Record("c", "w1", 1, 4)
	v, err := a.Check("c", []byte(`{"log":{"w0":[1,3,3,9],"w1":[]}}`))
	if err != nil || v != (Verdict{Acked: 4, Stored: 2, Lost: 2, Twice: 1}) || a.Count() != 4 || len(a.Revs("c")) != 5 {
		t.Fatalf("%+v %v count %d", v, err, a.Count())
	}
	if _, err := a.Check("c", []byte(`not json`)); err == nil {
		t.Fatal("a bad draft was read")
	}
}

// The fast update scan reads what the full decode reads, and refuses what
// it cannot vouch for.
func TestScanTail(t *testing.T) {
	by := protocol.Author{Name: `User "7"`, Session: "s1", User: "u7"}
	rev, id, user, ok := scanTail(protocol.Update{Campaign: "c_1", Ops: []byte(`[{"op":"add","path":"/x","value":{"id":"no","user":"no"}}]`), By: by,
		ID: "w1.3.1700000000123456", At: time.Now()}.Encode(42))
	if sent := sentMicros(id); !ok || rev != 42 || sent != 1700000000123456 || string(user) != "u7" {
		t.Fatalf("scan: %d %d %q %v", rev, sent, user, ok)
	}
	if _, id, user, ok := scanTail(protocol.Update{Campaign: "c_1", Ops: []byte(`[]`), By: by, At: time.Now()}.Encode(42)); !ok || id != nil || string(user) != "u7" {
		t.Fatalf("an update without an id: %q %q %v", id, user, ok)
	}
	// What the scan cannot vouch for takes the full decode.
	for _, msg := range []string{
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"name":"n","session":"s","user":"u"},"id":"a\"b.12","at":5}`,
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"name":"n","session":"s","user":"u\"v"},"at":5}`,
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"name":"n","session":"s","user":"u"},"at":5,"x":1}`,
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"name":"n","session":"s","user":"u"},"id":"i"}`,
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"name":"n","session":"s"},"at":5}`,
		`{"type":"update","campaign":"c_1","rev":4,"ops":[],"by":{"user":"u","x":"y"},"at":5}`,
		`"user":"u"},"at":5}`,
		`}`, ``,
	} {
		if rev, id, user, ok := scanTail([]byte(msg)); ok {
			t.Errorf("scanned %s as rev %d id %q user %q", msg, rev, id, user)
		}
	}
	for id, want := range map[string]int64{"w1.3.1700000000123456": 1700000000123456, "w1.": 0, "nodot": 0, "w.1x": 0, ".7": 7} {
		if got := sentMicros([]byte(id)); got != want {
			t.Errorf("sentMicros(%q) = %d, want %d", id, got, want)
		}
	}
}
