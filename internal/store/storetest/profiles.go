package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
)

func importNDJSON(t *testing.T, s store.Store, ws, lines string) (store.ImportReport, error) {
	t.Helper()
	d, err := audience.NewDecoder(strings.NewReader(lines), "ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return s.ImportProfiles(context.Background(), ws, d.Next)
}

var recent = time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)

var fixture = `{"id":"p1","country":"FR","city":"Paris","age":34,"subscribed":true,"email":"ann@example.fr","signup":"2023-01-15T10:00:00Z","plan":"pro","tags":["a"]}
{"id":"p2","country":"DE","city":"Berlin","age":19,"subscribed":false,"email":"bob@example.de","signup":"2024-06-01T00:00:00+02:00","plan":""}
{"id":"p3","country":"FR","city":"Lyon","age":51.5,"subscribed":true,"email":"cy@example.com","signup":"` + recent + `","plan":null}
{"id":"p4","country":"ES","age":"34","subscribed":"true","email":"dee@example.es","signup":"not a date","tags":[]}
{"id":"p5","country":"fr","city":"Nice","age":70,"email":"eve@EXAMPLE.fr"}
`

func testRules(t *testing.T, s store.Store) {
	ws := ID("w_")
	if _, err := importNDJSON(t, s, ws, fixture); err != nil {
		t.Fatal(err)
	}
	// Another workspace's profiles never match.
	if _, err := importNDJSON(t, s, ID("w_"), `{"id":"p1","country":"FR","age":34}`+"\n"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, rule, want string
	}{
		{"eq string", `{"field":"country","op":"eq","value":"FR"}`, "p1,p3"},
		{"eq is case-sensitive", `{"field":"country","op":"eq","value":"fr"}`, "p5"},
		{"eq number, not its string", `{"field":"age","op":"eq","value":34}`, "p1"},
		{"eq number by value", `{"field":"age","op":"eq","value":51.50}`, "p3"},
		{"eq boolean, not its string", `{"field":"subscribed","op":"eq","value":true}`, "p1,p3"},
		{"eq on id", `{"field":"id","op":"eq","value":"p4"}`, "p4"},
		{"ne needs the attribute", `{"field":"city","op":"ne","value":"Paris"}`, "p2,p3,p5"},
		{"in", `{"field":"country","op":"in","value":["DE","ES"]}`, "p2,p4"},
		{"in mixed types", `{"field":"age","op":"in","value":[19,"34"]}`, "p2,p4"},
		{"nin", `{"field":"country","op":"nin","value":["FR","fr"]}`, "p2,p4"},
		{"in on id", `{"field":"id","op":"in","value":["p1","p5","nope"]}`, "p1,p5"},
		{"contains", `{"field":"email","op":"contains","value":"example.f"}`, "p1"},
		{"starts_with", `{"field":"city","op":"starts_with","value":"Ly"}`, "p3"},
		{"ends_with", `{"field":"email","op":"ends_with","value":".fr"}`, "p1,p5"},
		{"gt numbers only", `{"field":"age","op":"gt","value":33}`, "p1,p3,p5"},
		{"gte", `{"field":"age","op":"gte","value":51.5}`, "p3,p5"},
		{"lt", `{"field":"age","op":"lt","value":34}`, "p2"},
		{"lte", `{"field":"age","op":"lte","value":34}`, "p1,p2"},
		{"between inclusive", `{"field":"age","op":"between","value":[19,34]}`, "p1,p2"},
		{"empty: missing, null, empty string or list", `{"field":"plan","op":"empty"}`, "p2,p3,p4,p5"},
		{"empty list", `{"field":"tags","op":"empty"}`, "p2,p3,p4,p5"},
		{"not_empty", `{"field":"plan","op":"not_empty"}`, "p1"},
		{"before", `{"field":"signup","op":"before","value":"2024-01-01T00:00:00Z"}`, "p1"},
		{"after, with offsets", `{"field":"signup","op":"after","value":"2024-05-31T21:59:00Z"}`, "p2,p3"},
		{"after excludes the instant", `{"field":"signup","op":"after","value":"2024-05-31T22:00:00Z"}`, "p3"},
		{"within_days", `{"field":"signup","op":"within_days","value":7}`, "p3"},
		{"all", `{"all":[{"field":"country","op":"eq","value":"FR"},{"field":"age","op":"gt","value":40}]}`, "p3"},
		{"any", `{"any":[{"field":"country","op":"eq","value":"DE"},{"field":"age","op":"gt","value":60}]}`, "p2,p5"},
		{"not is plain negation", `{"not":{"field":"city","op":"eq","value":"Paris"}}`, "p2,p3,p4,p5"},
		{"nested", `{"all":[{"any":[{"field":"country","op":"eq","value":"FR"},{"field":"country","op":"eq","value":"fr"}]},{"not":{"all":[{"field":"subscribed","op":"eq","value":true},{"field":"age","op":"lt","value":50}]}}]}`, "p3,p5"},
		{"missing attribute is false", `{"field":"nope","op":"eq","value":"x"}`, ""},
		{"SQL in a value is a value", `{"field":"country","op":"eq","value":"FR' OR '1'='1"}`, ""},
		{"SQL in a field name is a name", `{"field":"country') OR ('1'='1","op":"eq","value":"FR"}`, ""},
		{"SQL in contains", `{"field":"email","op":"contains","value":"%' OR 1=1 --"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := audience.ParseRule(json.RawMessage(tc.rule))
			if err != nil {
				t.Fatal(err)
			}
			ids, err := s.MatchProfiles(context.Background(), ws, r)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ids, ","); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("huge in list", func(t *testing.T) {
		vals := make([]string, audience.MaxInValues)
		for i := range vals {
			vals[i] = fmt.Sprintf("%q", fmt.Sprint("C", i))
		}
		vals[len(vals)-1] = `"DE"`
		r, err := audience.ParseRule(json.RawMessage(`{"field":"country","op":"in","value":[` + strings.Join(vals, ",") + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ids, err := s.MatchProfiles(context.Background(), ws, r)
		if err != nil || strings.Join(ids, ",") != "p2" || time.Since(start) > 5*time.Second {
			t.Fatalf("%v %v in %v", ids, err, time.Since(start))
		}
	})
}

func testImport(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	rep, err := importNDJSON(t, s, ws, `{"id":"a","plan":"free"}
{"id":"b","plan":"free"}
{"id":"a","plan":"pro"}
`)
	if err != nil || rep.Imported != 3 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	pro, _ := audience.ParseRule(json.RawMessage(`{"field":"plan","op":"eq","value":"pro"}`))
	if ids, _ := s.MatchProfiles(ctx, ws, pro); strings.Join(ids, ",") != "a" {
		t.Fatalf("the last line of an id should win: %v", ids)
	}
	// Upsert replaces the attributes.
	if _, err := importNDJSON(t, s, ws, `{"id":"a","country":"FR"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.MatchProfiles(ctx, ws, pro); len(ids) != 0 {
		t.Fatalf("attributes not replaced: %v", ids)
	}
	// Bad lines: nothing is written, every bad line is reported.
	rep, err = importNDJSON(t, s, ws, `{"id":"c","plan":"pro"}
not json
{"id":5}
{"plan":"pro"}
{"id":"d","plan":"pro"}
`)
	if errcode.Of(err) != errcode.Invalid || rep.BadLines != 3 || rep.Errors[0].Line != 2 || rep.Errors[1].Line != 3 || rep.Errors[2].Line != 4 {
		t.Fatalf("bad import: %+v %v", rep, err)
	}
	if ids, _ := s.MatchProfiles(ctx, ws, pro); len(ids) != 0 {
		t.Fatalf("partial import: %v", ids)
	}
	// CSV with typed cells.
	d, _ := audience.NewDecoder(strings.NewReader("id,age,subscribed,city\nx1,42,true,Paris\nx2,,false,\"Saint-Étienne, FR\"\n"), "csv")
	if rep, err := s.ImportProfiles(ctx, ws, d.Next); err != nil || rep.Imported != 2 {
		t.Fatalf("csv: %+v %v", rep, err)
	}
	old, _ := audience.ParseRule(json.RawMessage(`{"all":[{"field":"age","op":"gt","value":40},{"field":"subscribed","op":"eq","value":true}]}`))
	if ids, _ := s.MatchProfiles(ctx, ws, old); strings.Join(ids, ",") != "x1" {
		t.Fatalf("csv typing: %v", ids)
	}
	comma, _ := audience.ParseRule(json.RawMessage(`{"field":"city","op":"eq","value":"Saint-Étienne, FR"}`))
	if ids, _ := s.MatchProfiles(ctx, ws, comma); strings.Join(ids, ",") != "x2" {
		t.Fatalf("csv quoting: %v", ids)
	}
}

// testAttributes: the picker's attribute list (types, fill rate, frequent
// values) and the live count, exact on a small workspace and scaled from a
// sample on a larger one.
func testAttributes(t *testing.T, s store.Store) {
	ctx := context.Background()
	ws := ID("w_")
	if _, err := importNDJSON(t, s, ws, fixture); err != nil {
		t.Fatal(err)
	}
	if _, err := importNDJSON(t, s, ID("w_"), `{"id":"x","zodiac":"leo"}`+"\n"); err != nil { // another workspace
		t.Fatal(err)
	}
	total, err := s.ProfileCount(ctx, ws)
	if err != nil || total != 5 {
		t.Fatalf("count %d %v", total, err)
	}
	got, err := s.ProfileAttributes(ctx, ws, total, 1000)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]audience.Attribute{}
	for _, a := range got.Attributes {
		by[a.Key] = a
	}
	if got.Sampled != 5 || got.Profiles != 5 || len(by) != 9 || by["zodiac"].Key != "" || by["id"].Fill != 1 {
		t.Fatalf("attributes %+v", got)
	}
	if a := by["country"]; a.Type != "string" || a.Fill != 1 || len(a.Values) != 4 || a.Values[0].Value != "FR" || a.Values[0].Count != 2 {
		t.Errorf("country %+v", a)
	}
	if a := by["age"]; a.Type != "number" || a.Types["number"] != 4 || a.Types["string"] != 1 {
		t.Errorf("age %+v", a)
	}
	if a := by["signup"]; a.Type != "date" || a.Types["string"] != 1 || a.Fill != 0.8 {
		t.Errorf("signup %+v", a)
	}
	if a := by["plan"]; a.Fill != 0.4 { // null is not filled
		t.Errorf("plan %+v", a)
	}
	if a := by["subscribed"]; a.Type != "boolean" || a.Values[0].Value != true {
		t.Errorf("subscribed %+v", a)
	}
	if got.Attributes[0].Fill != 1 {
		t.Errorf("not sorted by fill: %+v", got.Attributes[0])
	}

	rule, _ := audience.ParseRule(json.RawMessage(`{"field":"country","op":"eq","value":"FR"}`))
	if n, exact, err := s.EstimateMatches(ctx, ws, rule, total, 1000); err != nil || n != 2 || !exact {
		t.Fatalf("exact count %d %v %v", n, exact, err)
	}
	// 2,000 profiles, a third French, sampled at 500: an estimate near 667.
	big := ID("w_")
	var lines strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&lines, `{"id":"q%04d","country":%q}`+"\n", i, []string{"FR", "DE", "ES"}[i%3])
	}
	if _, err := importNDJSON(t, s, big, lines.String()); err != nil {
		t.Fatal(err)
	}
	n, exact, err := s.EstimateMatches(ctx, big, rule, 2000, 500)
	if err != nil || (!exact && (n < 400 || n > 950)) || (exact && n != 667) {
		t.Fatalf("estimate %d exact %v %v", n, exact, err)
	}
	if a, err := s.ProfileAttributes(ctx, big, 2000, 500); err != nil || a.Sampled == 0 || a.Sampled > 2000 || a.Attributes[0].Key != "country" {
		t.Fatalf("sampled attributes %+v %v", a, err)
	}
}
