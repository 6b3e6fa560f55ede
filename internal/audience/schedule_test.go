package audience

import (
	"encoding/json"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	cases := []struct {
		name, schedule, after, want string
	}{
		{"once, ahead", `{"frequency":"once","date":"2026-12-01","at":"09:00","timezone":"Europe/Paris"}`, "2026-11-23T00:00:00Z", "2026-12-01T08:00:00Z"},
		{"once, passed", `{"frequency":"once","date":"2026-11-01","at":"09:00"}`, "2026-11-23T00:00:00Z", ""},
		{"daily, later today", `{"frequency":"daily","at":"18:30","timezone":"America/New_York"}`, "2026-11-23T12:00:00Z", "2026-11-23T23:30:00Z"},
		{"daily, tomorrow", `{"frequency":"daily","at":"06:00"}`, "2026-11-23T06:00:00Z", "2026-11-24T06:00:00Z"},
		{"weekly", `{"frequency":"weekly","weekday":"friday","at":"10:00","timezone":"Asia/Tokyo"}`, "2026-11-23T00:00:00Z", "2026-11-27T01:00:00Z"},
		{"monthly", `{"frequency":"monthly","day":1,"at":"02:00","timezone":"Europe/Paris"}`, "2026-11-23T00:00:00Z", "2026-12-01T01:00:00Z"},
		{"monthly on the 31st in a 30-day month", `{"frequency":"monthly","day":31,"at":"00:00"}`, "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"},
		{"across a DST change", `{"frequency":"daily","at":"09:00","timezone":"Europe/Paris"}`, "2026-03-28T09:00:00Z", "2026-03-29T07:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(json.RawMessage(tc.schedule))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Next(utc(tc.after))
			if tc.want == "" {
				if ok {
					t.Fatalf("want none, got %v", got)
				}
				return
			}
			if !ok || !got.Equal(utc(tc.want)) {
				t.Fatalf("got %v (%v), want %s", got.UTC(), ok, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"frequency":"hourly","at":"10:00"}`, `{"frequency":"daily","at":"25:00"}`, `{"frequency":"daily","at":"10:00","timezone":"Mars/Olympus"}`,
		`{"frequency":"weekly","at":"10:00","weekday":"someday"}`, `{"frequency":"monthly","at":"10:00","day":0}`, `{"frequency":"once","at":"10:00"}`, `{"frequency":"daily","at":"10:00","every":2}`} {
		if _, err := ParseSchedule(json.RawMessage(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestDraftSchedule(t *testing.T) {
	for _, tc := range []struct{ draft, want string }{
		{`{"canvas":{"schedule":{ "frequency": "daily", "at": "06:00", "timezone": "UTC" }}}`, `{"frequency":"daily","at":"06:00","timezone":"UTC"}`},
		{`{"canvas":{"activities":{}}}`, ""},
		{`{"canvas":{"schedule":null}}`, ""},
		{`{"canvas":{"schedule":{"frequency":"hourly"}}}`, ""}, // invalid: never runs
		{`{"name":"no canvas"}`, ""},
		{`not json`, ""},
	} {
		if got := DraftSchedule([]byte(tc.draft)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.draft, got, tc.want)
		}
	}
}
