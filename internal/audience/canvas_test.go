package audience

import (
	"encoding/json"
	"testing"
)

// TestErrorsNameActivitiesByLabel: a canvas that cannot run says what is
// wrong in words, naming the activity as the user labelled it.
func TestErrorsNameActivitiesByLabel(t *testing.T) {
	c, err := ParseCanvas(json.RawMessage(`{"activities":{
		"save_x1": {"type":"save_audience","label":"Subscribers","config":{"mode":"create_or_update","label":"Subs","update_mode":"replace"}},
		"comb_y2": {"type":"combine","label":"Everyone","config":{"operator":"union"}},
		"dedu_z3": {"type":"deduplication","config":{"keys":["email"]}},
		"build_a": {"type":"build_audience","label":"French","config":{"rule":{"field":"country","op":"eq","value":"FR"}}},
		"build_b": {"type":"build_audience","label":"German","config":{"rule":{"field":"country","op":"eq","value":"DE"}}}
	},"transitions":[{"from":"build_a","to":"comb_y2"},{"from":"build_a","to":"dedu_z3"},{"from":"build_b","to":"dedu_z3"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := &Planner{Canvas: c, Workspace: "w", Dialect: SQLite}
	for node, want := range map[string]string{
		"save_x1": `Save audience "Subscribers" has no incoming activity: connect one`,
		"comb_y2": `Combine "Everyone" combines two activities or more and has 1 incoming: connect another`,
		"dedu_z3": `Deduplication dedu_z3 takes one incoming activity and has 2: remove all but one`,
	} {
		if _, err := p.Plan(node); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", node, err, want)
		}
	}
}

func TestSuggestAndFields(t *testing.T) {
	known := []string{"signup", "country", "last_purchase", "email"}
	for name, want := range map[string]string{
		"signup date": "signup", "Country": "country", "lastpurchase": "last_purchase", "emial": "email", "zodiac": "",
	} {
		if got := Suggest(name, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", name, got, want)
		}
	}
	r, err := ParseRule(json.RawMessage(`{"all":[{"field":"country","op":"eq","value":"FR"},{"not":{"any":[{"field":"age","op":"gt","value":3},{"field":"country","op":"ne","value":"DE"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Fields(); len(got) != 2 || got[0] != "country" || got[1] != "age" {
		t.Errorf("fields %v", got)
	}
	if Dominant(map[string]int64{"string": 3, "number": 5}) != "number" {
		t.Error("dominant type")
	}
}
