// Package launch is the pre-launch checklist: what a campaign's draft must
// hold before it goes live (a message with its subject and body, a canvas
// that can run, a delivery time when one was asked for). It is pure: the
// HTTP launch refuses a draft with problems unless forced, and the editor
// shows the same list with links to what is missing.
package launch

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/campaign"
)

// Problem is one thing missing, at a path of the document the editor can
// take the user to.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Check lists a draft's problems; none means it is ready to launch.
func Check(doc campaign.Document) []Problem {
	var out []Problem
	add := func(path, format string, a ...any) {
		out = append(out, Problem{Path: path, Message: fmt.Sprintf(format, a...)})
	}
	str := func(p string) string {
		ptr, _ := campaign.ParsePointer(p)
		v, _ := doc.Get(ptr)
		s, _ := v.(string)
		return strings.TrimSpace(s)
	}
	present := func(p string) bool {
		ptr, _ := campaign.ParsePointer(p)
		v, ok := doc.Get(ptr)
		m, isObj := v.(map[string]any)
		return ok && (!isObj || len(m) > 0)
	}

	// A message: the email or the in-app message, each complete.
	email, inApp := present("/messages/email"), present("/messages/in_app")
	if !email && !inApp {
		add("/messages/email", "No message: write the email or the in-app message")
	}
	if email {
		if str("/messages/email/subject") == "" {
			add("/messages/email/subject", "The email has no subject")
		}
		if str("/messages/email/html") == "" {
			add("/messages/email/html", "The email has no body")
		}
	}
	if inApp {
		if str("/messages/in_app/title") == "" {
			add("/messages/in_app/title", "The in-app message has no title")
		}
		if str("/messages/in_app/body") == "" {
			add("/messages/in_app/body", "The in-app message has no body")
		}
	}

	// Delivery: a set time must be given, and parse.
	if str("/delivery/mode") == "scheduled" {
		at := str("/delivery/send_at")
		if at == "" {
			add("/delivery/send_at", "Delivery is set to a time, but no time is given")
		} else if !parsesAsTime(at) {
			add("/delivery/send_at", "The delivery time %q is not a date and time", at)
		}
	}

	// The canvas: at least one audience, every activity fed and configured.
	out = append(out, checkCanvas(doc)...)
	return out
}

func parsesAsTime(s string) bool {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func checkCanvas(doc campaign.Document) []Problem {
	raw, err := json.Marshal(doc["canvas"])
	if err != nil || doc["canvas"] == nil {
		return []Problem{{Path: "/canvas", Message: "The audience canvas is empty: add a Build audience activity"}}
	}
	c, err := audience.ParseCanvas(raw)
	if err != nil {
		return []Problem{{Path: "/canvas", Message: "The audience canvas cannot be read: " + err.Error()}}
	}
	if len(c.Activities) == 0 {
		return []Problem{{Path: "/canvas", Message: "The audience canvas is empty: add a Build audience activity"}}
	}
	var out []Problem
	incoming := map[string]int{}
	for i, t := range c.Transitions {
		from := strings.SplitN(t.From, "#", 2)[0]
		if _, ok := c.Activities[from]; !ok {
			out = append(out, Problem{Path: fmt.Sprintf("/canvas/transitions/%d", i), Message: fmt.Sprintf("A transition starts at %q, which is not on the canvas", from)})
		}
		if _, ok := c.Activities[t.To]; !ok {
			out = append(out, Problem{Path: fmt.Sprintf("/canvas/transitions/%d", i), Message: fmt.Sprintf("A transition ends at %q, which is not on the canvas", t.To)})
		}
		incoming[t.To]++
	}
	builds := 0
	for _, id := range c.SortedIDs() {
		a := c.Activities[id]
		path := "/canvas/activities/" + id
		name := c.Name(id)
		switch a.Type {
		case audience.BuildAudience:
			builds++
			var cfg struct {
				Rule     json.RawMessage `json:"rule"`
				Audience string          `json:"audience"`
			}
			json.Unmarshal(a.Config, &cfg)
			if len(cfg.Rule) == 0 && cfg.Audience == "" {
				out = append(out, Problem{Path: path, Message: name + " has no rule and no audience: set one"})
			} else if len(cfg.Rule) > 0 {
				if _, err := audience.ParseRule(cfg.Rule); err != nil {
					out = append(out, Problem{Path: path, Message: name + ": " + err.Error()})
				}
			}
			continue
		case audience.SaveAudience:
			if _, err := c.SaveConfigOf(id); err != nil {
				out = append(out, Problem{Path: path, Message: name + ": " + err.Error()})
			}
		case audience.Combine, audience.Deduplication, audience.Split:
		default:
			out = append(out, Problem{Path: path, Message: fmt.Sprintf("%s is of an unknown type %q", name, a.Type)})
			continue
		}
		if incoming[id] == 0 {
			out = append(out, Problem{Path: path, Message: name + " has no incoming activity: connect one"})
		}
	}
	if builds == 0 {
		out = append(out, Problem{Path: "/canvas", Message: "The canvas has no Build audience activity: nothing selects who receives the campaign"})
	}
	return out
}
