package audience

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/errcode"
)

// Schedule is when a canvas runs by itself: once at a date and time, or
// daily, weekly (on a weekday) or monthly (on a day of the month) at a
// wall-clock time in a time zone.
type Schedule struct {
	Frequency string `json:"frequency"` // once, daily, weekly, monthly
	At        string `json:"at"`        // "HH:MM", wall clock in Timezone
	Date      string `json:"date"`      // once: "YYYY-MM-DD"
	Weekday   string `json:"weekday"`   // weekly: "monday"...
	Day       int    `json:"day"`       // monthly: 1..31 (the month's last day when shorter)
	Timezone  string `json:"timezone"`  // IANA name; UTC when empty

	loc    *time.Location
	hour   int
	minute int
}

var weekdays = map[string]time.Weekday{"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday,
	"wednesday": time.Wednesday, "thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday}

// ParseSchedule decodes and validates a schedule.
func ParseSchedule(raw json.RawMessage) (*Schedule, error) {
	var s Schedule
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, errcode.New(errcode.Invalid, "schedule: %v", err)
	}
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, errcode.New(errcode.Invalid, "schedule.timezone: unknown time zone %q", s.Timezone)
	}
	s.loc = loc
	at, err := time.Parse("15:04", s.At)
	if err != nil {
		return nil, errcode.New(errcode.Invalid, "schedule.at: want HH:MM, got %q", s.At)
	}
	s.hour, s.minute = at.Hour(), at.Minute()
	switch s.Frequency {
	case "once":
		if _, err := time.ParseInLocation("2006-01-02", s.Date, loc); err != nil {
			return nil, errcode.New(errcode.Invalid, "schedule.date: want YYYY-MM-DD, got %q", s.Date)
		}
	case "daily":
	case "weekly":
		if _, ok := weekdays[strings.ToLower(s.Weekday)]; !ok {
			return nil, errcode.New(errcode.Invalid, "schedule.weekday: want monday..sunday, got %q", s.Weekday)
		}
	case "monthly":
		if s.Day < 1 || s.Day > 31 {
			return nil, errcode.New(errcode.Invalid, "schedule.day: want 1..31, got %d", s.Day)
		}
	default:
		return nil, errcode.New(errcode.Invalid, "schedule.frequency: want once, daily, weekly or monthly, got %q", s.Frequency)
	}
	return &s, nil
}

// Next returns the first run strictly after t; ok is false when there is
// none (a once schedule whose time has passed). Wall-clock times follow the
// time zone across daylight-saving changes.
func (s *Schedule) Next(t time.Time) (time.Time, bool) {
	local := t.In(s.loc)
	at := func(y int, m time.Month, d int) time.Time {
		return time.Date(y, m, d, s.hour, s.minute, 0, 0, s.loc)
	}
	switch s.Frequency {
	case "once":
		d, _ := time.ParseInLocation("2006-01-02", s.Date, s.loc)
		run := at(d.Year(), d.Month(), d.Day())
		return run, run.After(t)
	case "daily":
		run := at(local.Year(), local.Month(), local.Day())
		if !run.After(t) {
			run = at(local.Year(), local.Month(), local.Day()+1)
		}
		return run, true
	case "weekly":
		want := weekdays[strings.ToLower(s.Weekday)]
		for i := 0; i <= 7; i++ {
			day := local.AddDate(0, 0, i)
			if day.Weekday() != want {
				continue
			}
			if run := at(day.Year(), day.Month(), day.Day()); run.After(t) {
				return run, true
			}
		}
	case "monthly":
		for i := 0; i <= 12; i++ {
			first := time.Date(local.Year(), local.Month()+time.Month(i), 1, 0, 0, 0, 0, s.loc)
			last := first.AddDate(0, 1, -1).Day()
			if run := at(first.Year(), first.Month(), min(s.Day, last)); run.After(t) {
				return run, true
			}
		}
	}
	return time.Time{}, false
}

// DraftSchedule reads the schedule of a campaign draft, /canvas/schedule,
// as the spec the store keeps: compact JSON, "" when the draft has none or
// one that does not parse (an invalid schedule never runs; the editor shows
// the error when the canvas is run by hand).
func DraftSchedule(draft []byte) string {
	var d struct {
		Canvas struct {
			Schedule json.RawMessage `json:"schedule"`
		} `json:"canvas"`
	}
	if json.Unmarshal(draft, &d) != nil || len(d.Canvas.Schedule) == 0 || string(d.Canvas.Schedule) == "null" {
		return ""
	}
	if _, err := ParseSchedule(d.Canvas.Schedule); err != nil {
		return ""
	}
	var b bytes.Buffer
	if json.Compact(&b, d.Canvas.Schedule) != nil {
		return ""
	}
	return b.String()
}
