package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
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
			req.BatchID()
		}
	})
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		frame, err, ref string
	}{
		{`{"type":"join","campaign":"c1","ref":"r1"}`, "", `"r1"`},
		{`{"type":"join","ref":{"a":1}}`, "ref must be a string or a number", ""},
		{`{"ref":1}`, "needs a string type", ""},
		{`{"type":"a"}{"type":"b"}`, "one JSON object per frame", ""},
		{`[1]`, "malformed message", ""},
	} {
		req, err := DecodeRequest([]byte(tc.frame))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.frame, err, tc.err)
		}
		if tc.ref != "" && string(req.Ref) != tc.ref {
			t.Errorf("%s: ref %s", tc.frame, req.Ref)
		}
		if err != nil && req != nil && len(req.Ref) > 0 {
			t.Errorf("%s: a refused request keeps ref %s", tc.frame, req.Ref)
		}
	}
}

func TestBatchID(t *testing.T) {
	for _, tc := range []struct{ id, want, err string }{
		{`"b1"`, "b1", ""}, {`7`, "7", ""}, {``, "", ""}, {`null`, "", ""},
		{`{"x":1}`, "", "string or a number"}, {`"` + strings.Repeat("x", 129) + `"`, "", "at most 128 bytes"},
	} {
		got, err := (&Request{ID: json.RawMessage(tc.id)}).BatchID()
		if got != tc.want || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("id %s: %q %v", tc.id, got, err)
		}
	}
}

func TestCheapRef(t *testing.T) {
	small := []byte(`{"type":"edit","ref":"r9","ops":[]}`)
	if got := CheapRef(small); string(got) != `"r9"` {
		t.Fatalf("small frame ref %s", got)
	}
	big := []byte(`{"type":"edit","ref":"r9","pad":"` + strings.Repeat("x", cheapRefLimit) + `"}`)
	if got := CheapRef(big); got != nil {
		t.Fatalf("a frame over %d bytes had its ref read: %s", cheapRefLimit, got)
	}
	if got := CheapRef([]byte(`{"ref":{"a":1}}`)); got != nil {
		t.Fatalf("bad ref echoed: %s", got)
	}
}

// The hand-written ack is the JSON a struct marshal writes.
func TestEncodeAck(t *testing.T) {
	for _, tc := range []struct {
		ref string
		dup bool
	}{{`"r1"`, false}, {`42`, true}, {``, false}} {
		a := Ack{Campaign: "c_1-x", Rev: 17, Duplicate: tc.dup}
		got := Encode(json.RawMessage(tc.ref), a)
		type plain Ack // no MessageType: the generic path
		body, _ := json.Marshal(plain(a))
		m := map[string]any{}
		json.Unmarshal(body, &m)
		m["type"] = "ack"
		if tc.ref != "" {
			m["ref"] = json.RawMessage(tc.ref)
		}
		want, _ := json.Marshal(m)
		var x, y any
		if json.Unmarshal(got, &x) != nil || json.Unmarshal(want, &y) != nil || !reflect.DeepEqual(x, y) {
			t.Fatalf("ack %s, want %s", got, want)
		}
	}
}

// An update joined here is what the edit script joins, and its readers
// find its rev and recognise it.
func TestUpdateFrame(t *testing.T) {
	u := Update{Campaign: "c1", Ops: json.RawMessage(`[{"op":"replace","path":"/name","value":"x\n\"rev\":9"}]`),
		By: Author{User: "ann", Name: "Ann", Session: "s1"}, ID: "b1", At: time.UnixMilli(1700000000000)}
	prefix, suffix := u.Frame()
	msg := u.Encode(42)
	if string(msg) != prefix+"42"+suffix || !IsUpdate(msg) || FrameRev(msg) != 42 {
		t.Fatalf("frame %s: rev %d", msg, FrameRev(msg))
	}
	if bytes.IndexByte(msg, '\n') >= 0 {
		t.Fatalf("an update holds a raw newline, which would split a batched frame: %s", msg)
	}
	var back struct {
		Type, Campaign, ID string
		Rev                int64
		By                 Author
		At                 int64
	}
	if err := json.Unmarshal(msg, &back); err != nil || back.Type != "update" || back.Rev != 42 || back.By != u.By || back.ID != "b1" || back.At != 1700000000000 {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	if IsUpdate([]byte(PresenceChanged)) || IsUpdate(Encode(nil, Status{Campaign: "c1", Status: "active"})) {
		t.Fatal("IsUpdate took another message for an update")
	}
}

// Frame writes its strings as encoding/json does, whatever they hold.
func TestUpdateFrameEscapes(t *testing.T) {
	for _, str := range []string{"", "plain-id_9", `Ann "A" Lee`, `back\slash`, "<b>&co</b>", "Zoë 日本", "tab\tnl\n", "bad \xff utf8", "\u2028 sep"} {
		u := Update{Campaign: str, Ops: json.RawMessage(`[]`), By: Author{User: str, Name: str, Session: str}, ID: str, At: time.UnixMilli(1)}
		q, _ := json.Marshal(str)
		by, _ := json.Marshal(u.By)
		want := `{"type":"update","campaign":` + string(q) + `,"rev":7,"ops":[],"by":` + string(by)
		if str != "" {
			want += `,"id":` + string(q)
		}
		want += `,"at":1}`
		if got := string(u.Encode(7)); got != want {
			t.Errorf("%q:\n got %s\nwant %s", str, got, want)
		}
	}
}

// goldenExamples reads the message examples of docs/protocol.md: each is a
// fenced block whose info string is "json <name>".
func goldenExamples(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	re := regexp.MustCompile("(?s)```json ([a-z.-]+)\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(m[2])); err != nil {
			t.Fatalf("docs/protocol.md example %s is not JSON: %v", m[1], err)
		}
		out[m[1]] = b.String()
	}
	return out
}

// Every message the server sends is pinned by its example in
// docs/protocol.md, byte for byte (field order too).
func TestGoldenMessages(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	editors := []Editor{{User: "ann", Name: "Ann Lee", Session: "s_1", Tab: "content", Editing: "/messages/email/body", Field: ""}}
	ref := json.RawMessage(`"r1"`)
	cases := []struct {
		name string
		ref  json.RawMessage
		msg  Message
		raw  []byte // for the frames written by hand
	}{
		{name: "welcome", ref: ref, msg: Welcome{User: "ann", Name: "Ann Lee", Workspace: "w1", Role: "editor", Session: "s_1"}},
		{name: "snapshot", ref: ref, msg: Snapshot{Campaign: "c_1", Status: "draft", Rev: 12, Epoch: "e1", Doc: json.RawMessage(`{"name":"Spring"}`),
			Version: 3, SavedRev: 10, EpochStart: 0, Editors: editors, EditorsTotal: 1}},
		{name: "joined", ref: ref, msg: Joined{Campaign: "c_1", Rev: 12, Epoch: "e1"}},
		{name: "left", ref: ref, msg: Left{Campaign: "c_1"}},
		{name: "ok", ref: ref, msg: OK{Campaign: "c_1"}},
		{name: "ok-editor", ref: ref, msg: OK{Campaign: "c_1", Path: "/messages/email/body", Staged: json.RawMessage(`"Hi {{first_name}}"`)}},
		{name: "ack", ref: ref, msg: Ack{Campaign: "c_1", Rev: 13}},
		{name: "ack-duplicate", ref: ref, msg: Ack{Campaign: "c_1", Rev: 13, Duplicate: true}},
		{name: "update", raw: Update{Campaign: "c_1", Ops: json.RawMessage(`[{"op":"replace","path":"/name","value":"Summer"}]`),
			By: Author{User: "ann", Name: "Ann Lee", Session: "s_1"}, ID: "b7", At: at}.Encode(13)},
		{name: "refresh-conflict", ref: ref, msg: Refresh{Campaign: "c_1", Rev: 14, Reason: ReasonConflict, Paths: []string{"/name"}, Values: map[string]any{"/name": "Autumn"}}},
		{name: "refresh-gap", ref: ref, msg: Refresh{Campaign: "c_1", Rev: 14, Reason: ReasonGap}},
		{name: "refresh-restored", msg: Refresh{Campaign: "c_1", Rev: 15, Reason: ReasonRestored, Paths: []string{"/name"}, Version: 2}},
		{name: "saved", msg: Saved{Campaign: "c_1", Version: 4, Rev: 15, At: FormatTime(at), Trigger: "timer", Epoch: "e1"}},
		{name: "published", ref: ref, msg: Published{Campaign: "c_1", Version: 5, Rev: 15}},
		{name: "status", msg: Status{Campaign: "c_1", Status: "stopped"}},
		{name: "presence", msg: Presence{Campaign: "c_1", Editors: editors, EditorsTotal: 1}},
		{name: "activity.result", ref: ref, msg: ActivityResult{Campaign: "c_1", Activity: "build_1", Count: 888, Columns: []string{"id", "email"},
			Sample: []map[string]any{{"id": "p1", "email": "a@example.com"}}, Transitions: []Transition{{From: "build_1", To: "save_1", Count: 888}}, By: "ann"}},
		{name: "audience.saved", ref: ref, msg: AudienceSaved{Campaign: "c_1", Activity: "save_1", Audience: "a_1", Label: "Subscribers",
			Created: true, Count: 888, Added: 888, Removed: 0, By: "ann"}},
		{name: "audiences", ref: ref, msg: Audiences{Audiences: []AudienceSummary{{ID: "a_1", Label: "Subscribers", Dimension: "profile", Kind: "saved", Count: 888, Updated: at}}}},
		{name: "audience", ref: ref, msg: Audience{ID: "a_1", Label: "Subscribers", Dimension: "profile", Kind: "saved", Columns: []string{"id", "email"},
			Rows: []map[string]any{{"id": "p1", "email": "a@example.com"}}, Count: 888, Updated: at}},
		{name: "error", ref: ref, msg: ErrorOf(errcode.New(errcode.Conflict, "campaign c_1 is archived and refuses edits"))},
	}
	examples := goldenExamples(t)
	covered := map[string]bool{}
	for _, tc := range cases {
		got := tc.raw
		if got == nil {
			got = Encode(tc.ref, tc.msg)
		}
		want, ok := examples[tc.name]
		if !ok {
			t.Errorf("docs/protocol.md has no example %q; it would be:\n```json %s\n%s\n```", tc.name, tc.name, got)
			continue
		}
		covered[tc.name] = true
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
	for name := range examples {
		if !covered[name] {
			t.Errorf("docs/protocol.md example %q is pinned by no test", name)
		}
	}
}

// Every message type has a golden case: a new message cannot skip one.
func TestEveryMessageHasAnExample(t *testing.T) {
	examples := goldenExamples(t)
	for _, m := range []Message{Welcome{}, Snapshot{}, Joined{}, Left{}, OK{}, Ack{}, Refresh{}, Saved{}, Published{}, Status{},
		Presence{}, ActivityResult{}, AudienceSaved{}, Audiences{}, Audience{}, Error{}} {
		found := false
		for name := range examples {
			if name == m.MessageType() || strings.HasPrefix(name, m.MessageType()+"-") {
				found = true
			}
		}
		if !found {
			t.Errorf("message %s has no example in docs/protocol.md", m.MessageType())
		}
	}
}

// FrameRev reads the rev where the server frames it, and anywhere else in
// a message framed otherwise.
func TestFrameRev(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want int64
	}{
		{`{"type":"update","campaign":"c_1","rev":42,"ops":[],"at":1}`, 42},
		{`{"type":"update","campaign":"c-1","rev":0,"ops":[]}`, 0},
		{`{"type":"update","campaign":"c","ops":[{"value":{"rev":9}}],"rev":7}`, 9}, // not the server's framing: the first "rev":
		{`{"type":"update","rev":12,"campaign":"c"}`, 12},
		{`{"type":"update","campaign":"c"}`, 0},
		{`{"type":"update","campaign":"`, 0},
		{`{"type":"update","campaign":"c",`, 0},
		{`{"type":"ack","campaign":"c","rev":5}`, 5},
		{`{"type":"update","campaign":"c","rev":99999999999999999999}`, 999999999999999999},
	} {
		if got := FrameRev([]byte(c.msg)); got != c.want {
			t.Errorf("FrameRev(%s) = %d, want %d", c.msg, got, c.want)
		}
	}
}

// BenchmarkDecodeRequest: one edit request as the browser sends it.
func BenchmarkDecodeRequest(b *testing.B) {
	frame := []byte(`{"type":"edit","campaign":"c_0123456789","ref":"r-42","base":1234,"id":"w1.42.1733150000123456","ops":[{"op":"replace","path":"/fields/w1/label","value":"Spring sale 42"}]}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateFrame: the update an accepted edit becomes, built once per
// edit before it goes to Redis.
func BenchmarkUpdateFrame(b *testing.B) {
	u := Update{Campaign: "c_0123456789", Ops: json.RawMessage(`[{"op":"replace","path":"/fields/w1/label","value":"Spring sale 42"}]`),
		By: Author{User: "bench-w1", Name: "Writer 1", Session: "s_0123456789abcdef"}, ID: "w1.42.1733150000123456", At: time.UnixMilli(1733150000123)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if p, s := u.Frame(); len(p)+len(s) == 0 {
			b.Fatal("empty")
		}
	}
}

// FuzzScanRequest: a frame the scanner reads means exactly what
// encoding/json reads in it.
func FuzzScanRequest(f *testing.F) {
	for _, s := range scannedFrames {
		f.Add([]byte(s))
	}
	for _, s := range []string{`{"type":"edit","base":1.5}`, `{"type":"edit","Type":"x"}`, `{"type":"a","type":"b"}`, `{"ref":null,"type":"x"}`,
		`{"type":"x","keep_open":1}`, `{"type":"x","offset":99999999999999999999}`, `{"type":"\u0065dit"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := scanRequest(data)
		if !ok {
			return
		}
		var want Request
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%q:\nscanned  %+v\nencoding %+v", data, *got, want)
		}
	})
}

// The frames a browser and collab bench send most: the scanner must read
// them, not leave them to encoding/json.
var scannedFrames = []string{
	`{"type":"edit","campaign":"c1","base":12,"id":"b-7","ref":7,"ops":[{"op":"replace","path":"/name","value":"Spring"}]}`,
	`{"type":"edit","campaign":"c1","base":0,"ops":[{"op":"add","path":"/fields/w1","value":{"a":[1,2]}}],"ref":"r1"}`,
	` { "type" : "join" , "campaign" : "c-2" , "since" : 40 , "epoch" : "e1" } `,
	`{"type":"hello","token":"aaa.bbb.ccc"}`,
	`{"type":"editor.done","campaign":"c","path":"/messages/email/body","value":"<p>é</p>","keep_open":true}`,
	`{"type":"audience.list","query":"spring","offset":0,"limit":50}`,
}

func TestScanRequestReadsCommonFrames(t *testing.T) {
	for _, s := range scannedFrames {
		got, ok := scanRequest([]byte(s))
		if !ok {
			t.Errorf("left to encoding/json: %s", s)
			continue
		}
		var want Request
		if err := json.Unmarshal([]byte(s), &want); err != nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("%s:\nscanned  %+v\nencoding %+v (%v)", s, *got, want, err)
		}
	}
}

// A field added to Request and not to the scanner would send every frame
// that carries it through encoding/json.
func TestScanRequestKnowsEveryField(t *testing.T) {
	rt := reflect.TypeOf(Request{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if _, ok := requestFields[name]; !ok {
			t.Errorf("Request.%s (%q) is not read by scanRequest", rt.Field(i).Name, name)
		}
	}
	if len(requestFields) > 32 {
		t.Fatalf("%d fields do not fit scanRequest's 32-bit seen mask", len(requestFields))
	}
}
