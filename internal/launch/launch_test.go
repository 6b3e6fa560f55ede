package launch

import (
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/campaign"
)

const readyCanvas = `"canvas":{"activities":{"b":{"type":"build_audience","config":{"rule":{"field":"country","op":"eq","value":"FR"}}},
  "s":{"type":"save_audience","config":{"mode":"create_or_update","label":"French","update_mode":"replace"}}},
  "transitions":[{"from":"b","to":"s"}]}`

func TestCheck(t *testing.T) {
	email := `"messages":{"email":{"subject":"Hello","html":"<p>Hi</p>"}}`
	cases := []struct {
		name string
		doc  string
		want []string // paths with a problem, in order
	}{
		{"ready", `{` + email + `,` + readyCanvas + `}`, nil},
		{"empty", `{}`, []string{"/messages/email", "/canvas"}},
		{"email without subject or body", `{"messages":{"email":{"preheader":"x"}},` + readyCanvas + `}`, []string{"/messages/email/subject", "/messages/email/html"}},
		{"in-app only, complete", `{"messages":{"in_app":{"title":"T","body":"B"}},` + readyCanvas + `}`, nil},
		{"blank subject", `{"messages":{"email":{"subject":"  ","html":"x"}},` + readyCanvas + `}`, []string{"/messages/email/subject"}},
		{"scheduled without a time", `{` + email + `,"delivery":{"mode":"scheduled"},` + readyCanvas + `}`, []string{"/delivery/send_at"}},
		{"scheduled with a bad time", `{` + email + `,"delivery":{"mode":"scheduled","send_at":"soon"},` + readyCanvas + `}`, []string{"/delivery/send_at"}},
		{"scheduled at a time", `{` + email + `,"delivery":{"mode":"scheduled","send_at":"2027-01-05T09:30"},` + readyCanvas + `}`, nil},
		{"canvas without activities", `{` + email + `,"canvas":{"activities":{},"transitions":[]}}`, []string{"/canvas"}},
		{"save audience not connected", `{` + email + `,"canvas":{"activities":{"b":{"type":"build_audience","config":{"rule":{"field":"country","op":"eq","value":"FR"}}},
			"s":{"type":"save_audience","config":{"mode":"create_or_update","label":"Subscribers","update_mode":"replace"}}},"transitions":[]}}`, []string{"/canvas/activities/s"}},
		{"build without rule", `{` + email + `,"canvas":{"activities":{"b":{"type":"build_audience","config":{}}},"transitions":[]}}`, []string{"/canvas/activities/b"}},
		{"dangling transition", `{` + email + `,"canvas":{"activities":{"b":{"type":"build_audience","config":{"audience":"a1"}}},"transitions":[{"from":"b","to":"gone"}]}}`, []string{"/canvas/transitions/0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := campaign.ParseDocument([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			got := Check(doc)
			var paths []string
			for _, p := range got {
				paths = append(paths, p.Path)
				if p.Message == "" {
					t.Errorf("problem at %s has no message", p.Path)
				}
			}
			if strings.Join(paths, " ") != strings.Join(c.want, " ") {
				t.Fatalf("problems %+v, want at %v", got, c.want)
			}
		})
	}
}

// An activity is named by its label, as the user sees it.
func TestProblemsNameActivitiesByLabel(t *testing.T) {
	doc, _ := campaign.ParseDocument([]byte(`{"messages":{"email":{"subject":"s","html":"h"}},"canvas":{"activities":{
		"b":{"type":"build_audience","config":{"audience":"a1"}},
		"save_x1":{"type":"save_audience","config":{"mode":"create_or_update","label":"Subscribers","update_mode":"replace"}}},"transitions":[]}}`))
	got := Check(doc)
	if len(got) != 1 || got[0].Message != `Save audience "Subscribers" has no incoming activity: connect one` {
		t.Fatalf("%+v", got)
	}
}
