package audience

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/collab-dev/collab/internal/errcode"
)

// Canvas is an orchestrated campaign's targeting canvas, the document's
// /canvas: activities by id, the transitions between them, and an optional
// schedule.
type Canvas struct {
	Activities  map[string]Activity `json:"activities"`
	Transitions []Transition        `json:"transitions"`
	Schedule    json.RawMessage     `json:"schedule,omitempty"`
}

// Activity is one node of the canvas. Label is the user's name for it
// (what every message names it by); the editor also keeps its position on
// the plane, which nothing here reads.
type Activity struct {
	Type   string          `json:"type"`
	Label  string          `json:"label,omitempty"`
	Config json.RawMessage `json:"config"`
}

// TypeName is how an activity type reads in a sentence.
func TypeName(t string) string {
	switch t {
	case BuildAudience:
		return "Build audience"
	case SaveAudience:
		return "Save audience"
	case Combine:
		return "Combine"
	case Deduplication:
		return "Deduplication"
	case Split:
		return "Split"
	}
	return "Activity"
}

// Name is how messages name an activity: its type and label (Save
// audience "Subscribers"), a save's audience label when the activity has
// none, else its type and id.
func (c *Canvas) Name(id string) string {
	a, ok := c.Activities[id]
	if !ok {
		return fmt.Sprintf("activity %q", id)
	}
	if a.Label != "" {
		return fmt.Sprintf("%s %q", TypeName(a.Type), a.Label)
	}
	var cfg struct {
		Label string `json:"label"`
	}
	json.Unmarshal(a.Config, &cfg)
	if cfg.Label != "" {
		return fmt.Sprintf("%s %q", TypeName(a.Type), cfg.Label)
	}
	return fmt.Sprintf("%s %s", TypeName(a.Type), id)
}

// Transition carries a population from an activity's output to another
// activity. From is an activity id, or "id#output" for an activity with
// several outputs (a split's subsets and its complement).
type Transition struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Activity types.
const (
	BuildAudience = "build_audience"
	Combine       = "combine"
	Deduplication = "deduplication"
	Split         = "split"
	SaveAudience  = "save_audience"
)

// ParseCanvas decodes a canvas.
func ParseCanvas(raw json.RawMessage) (*Canvas, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errcode.New(errcode.Invalid, "the campaign has no /canvas")
	}
	var c Canvas
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errcode.New(errcode.Invalid, "canvas: %v", err)
	}
	return &c, nil
}

// Population is the SQL of one activity output's population: rows of (id,
// data), data a JSON object of the carried columns.
type Population struct {
	SQL     string
	Args    []any
	Columns []string // carried columns, "id" excluded
	Node    string   // the activity (and output) it is the population of
}

// Lookup answers what planning needs from the database.
type Lookup interface {
	// AudienceColumns returns the columns of an existing audience of the
	// workspace, or errcode.NotFound.
	AudienceColumns(workspace, id string) ([]string, error)
}

// Planner turns canvas nodes into population SQL for one workspace.
type Planner struct {
	Canvas    *Canvas
	Workspace string
	Dialect   Dialect
	Lookup    Lookup
}

// Plan returns the population of node ("activity" or "activity#output").
func (p *Planner) Plan(node string) (Population, error) {
	q := NewQuery(p.Dialect)
	sql, cols, err := p.plan(q, node, map[string]bool{})
	if err != nil {
		return Population{}, err
	}
	return Population{SQL: sql, Args: q.Args(), Columns: cols, Node: node}, nil
}

// Inputs returns the transitions into an activity, in canvas order.
func (c *Canvas) Inputs(activity string) []Transition {
	var in []Transition
	for _, t := range c.Transitions {
		if t.To == activity {
			in = append(in, t)
		}
	}
	return in
}

// Upstream returns every transition that feeds node, nearest first.
func (c *Canvas) Upstream(node string) []Transition {
	var out []Transition
	seen := map[string]bool{}
	queue := []string{strings.SplitN(node, "#", 2)[0]}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		if seen[a] {
			continue
		}
		seen[a] = true
		for _, t := range c.Inputs(a) {
			out = append(out, t)
			queue = append(queue, strings.SplitN(t.From, "#", 2)[0])
		}
	}
	return out
}

func (p *Planner) config(id string, a Activity, v any) error {
	if len(a.Config) == 0 {
		return errcode.New(errcode.Invalid, "%s: missing config", p.Canvas.Name(id))
	}
	dec := json.NewDecoder(strings.NewReader(string(a.Config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errcode.New(errcode.Invalid, "%s: config: %v", p.Canvas.Name(id), err)
	}
	return nil
}

func (p *Planner) plan(q *Query, node string, visiting map[string]bool) (string, []string, error) {
	id, output, _ := strings.Cut(node, "#")
	a, ok := p.Canvas.Activities[id]
	if !ok {
		return "", nil, errcode.New(errcode.Invalid, "there is no activity %q on the canvas", id)
	}
	if visiting[id] {
		return "", nil, errcode.New(errcode.Invalid, "the canvas loops through %s: remove a connection of the loop", p.Canvas.Name(id))
	}
	visiting[id] = true
	defer delete(visiting, id)
	if output != "" && a.Type != Split {
		return "", nil, errcode.New(errcode.Invalid, "%s has one output; %q names another", p.Canvas.Name(id), node)
	}
	ws := func() string { return q.Arg(p.Workspace) }
	single := func() (string, []string, error) {
		in := p.Canvas.Inputs(id)
		if len(in) != 1 {
			if len(in) == 0 {
				return "", nil, errcode.New(errcode.Invalid, "%s has no incoming activity: connect one", p.Canvas.Name(id))
			}
			return "", nil, errcode.New(errcode.Invalid, "%s takes one incoming activity and has %d: remove all but one", p.Canvas.Name(id), len(in))
		}
		return p.plan(q, in[0].From, visiting)
	}
	switch a.Type {
	case BuildAudience:
		var cfg struct {
			Rule     json.RawMessage `json:"rule"`
			Audience string          `json:"audience"`
			Columns  []string        `json:"columns"`
		}
		if err := p.config(id, a, &cfg); err != nil {
			return "", nil, err
		}
		if (len(cfg.Rule) == 0) == (cfg.Audience == "") {
			return "", nil, errcode.New(errcode.Invalid, "%s needs either a rule or an existing audience (one of them)", p.Canvas.Name(id))
		}
		for i, c := range cfg.Columns {
			if c == "" || c == "id" || len(c) > MaxFieldBytes || strings.ContainsAny(c, "\"\\\x00") {
				return "", nil, errcode.New(errcode.Invalid, "%s: columns[%d]: bad attribute name %q", p.Canvas.Name(id), i, c)
			}
		}
		if cfg.Audience != "" {
			cols, err := p.Lookup.AudienceColumns(p.Workspace, cfg.Audience)
			if err != nil {
				return "", nil, err
			}
			return "SELECT m.profile_id AS id, m.data AS data FROM audience_members m JOIN audiences a ON a.id = m.audience_id WHERE a.workspace = " +
				ws() + " AND a.id = " + q.Arg(cfg.Audience), cols, nil
		}
		r, err := ParseRule(cfg.Rule)
		if err != nil {
			return "", nil, errcode.New(errcode.Invalid, "%s: %v", p.Canvas.Name(id), err)
		}
		return "SELECT p.id AS id, " + q.dataOf("p", cfg.Columns) + " AS data FROM profiles p WHERE p.workspace = " + ws() +
			" AND " + q.Where(r, "p"), cfg.Columns, nil

	case Combine:
		var cfg struct {
			Operator string `json:"operator"`
			Primary  string `json:"primary"`
		}
		if err := p.config(id, a, &cfg); err != nil {
			return "", nil, err
		}
		in := p.Canvas.Inputs(id)
		if len(in) < 2 {
			return "", nil, errcode.New(errcode.Invalid, "%s combines two activities or more and has %d incoming: connect another", p.Canvas.Name(id), len(in))
		}
		// The primary input first, the others in canvas order.
		nodes := []string{}
		if cfg.Primary != "" {
			found := false
			for _, t := range in {
				if t.From == cfg.Primary {
					found = true
				}
			}
			if !found {
				return "", nil, errcode.New(errcode.Invalid, "%s: primary %q is not one of its inputs", p.Canvas.Name(id), cfg.Primary)
			}
			nodes = append(nodes, cfg.Primary)
		}
		for _, t := range in {
			if t.From != cfg.Primary {
				nodes = append(nodes, t.From)
			}
		}
		subs := make([]string, len(nodes))
		var cols []string
		for i, n := range nodes {
			sql, c, err := p.plan(q, n, visiting)
			if err != nil {
				return "", nil, err
			}
			subs[i] = sql
			if i == 0 || cfg.Operator == "union" {
				cols = mergeColumns(cols, c)
			}
		}
		switch cfg.Operator {
		case "union":
			parts := make([]string, len(subs))
			for i, s := range subs {
				parts[i] = fmt.Sprintf("SELECT id, data, %d AS src FROM (%s) u%d", i, s, i)
			}
			return "SELECT id, data FROM (SELECT id, data, ROW_NUMBER() OVER (PARTITION BY id ORDER BY src) AS rn FROM (" +
				strings.Join(parts, " UNION ALL ") + ") uu) un WHERE rn = 1", cols, nil
		case "intersection", "exclusion":
			// EXISTS and NOT EXISTS: semi- and anti-joins in both databases
			// (NOT IN over a large set degrades to a scan per row).
			cond := "EXISTS"
			if cfg.Operator == "exclusion" {
				cond = "NOT EXISTS"
			}
			var where []string
			for i, s := range subs[1:] {
				where = append(where, fmt.Sprintf("%s (SELECT 1 FROM (%s) c%d WHERE c%d.id = c0.id)", cond, s, i+1, i+1))
			}
			return "SELECT c0.id AS id, c0.data AS data FROM (" + subs[0] + ") c0 WHERE " + strings.Join(where, " AND "), cols, nil
		}
		return "", nil, errcode.New(errcode.Invalid, "%s: the operator must be union, intersection or exclusion, not %q", p.Canvas.Name(id), cfg.Operator)

	case Deduplication:
		var cfg struct {
			Keys []string `json:"keys"`
			Keep string   `json:"keep"`
		}
		if err := p.config(id, a, &cfg); err != nil {
			return "", nil, err
		}
		in, cols, err := single()
		if err != nil {
			return "", nil, err
		}
		if len(cfg.Keys) == 0 {
			return "", nil, errcode.New(errcode.Invalid, "%s needs the columns that identify duplicates (keys)", p.Canvas.Name(id))
		}
		order := map[string]string{"": "ASC", "first": "ASC", "last": "DESC"}[cfg.Keep]
		if order == "" {
			return "", nil, errcode.New(errcode.Invalid, "%s: keep must be first or last", p.Canvas.Name(id))
		}
		var parts []string
		for _, k := range cfg.Keys {
			if k == "id" {
				parts = append(parts, "d.id")
				continue
			}
			if !contains(cols, k) {
				return "", nil, errcode.New(errcode.Invalid, "%s: key %q is not a column of its input (%s)", p.Canvas.Name(id), k, strings.Join(cols, ", "))
			}
			// A member without the key is its own group: never merged with others.
			parts = append(parts, "COALESCE("+q.jsonText("d.data", k)+", 'id:' || d.id)")
		}
		return "SELECT id, data FROM (SELECT d.id AS id, d.data AS data, ROW_NUMBER() OVER (PARTITION BY " + strings.Join(parts, ", ") +
			" ORDER BY d.id " + order + ") AS rn FROM (" + in + ") d) dd WHERE rn = 1", cols, nil

	case Split:
		var cfg struct {
			Subsets []struct {
				Name  string          `json:"name"`
				Rule  json.RawMessage `json:"rule"`
				Limit int             `json:"limit"`
			} `json:"subsets"`
			Complement bool `json:"complement"`
		}
		if err := p.config(id, a, &cfg); err != nil {
			return "", nil, err
		}
		if len(cfg.Subsets) == 0 {
			return "", nil, errcode.New(errcode.Invalid, "%s needs at least one subset", p.Canvas.Name(id))
		}
		if output == "" {
			return "", nil, errcode.New(errcode.Invalid, "%s: a split has one output per subset: name one as %s#<subset>", p.Canvas.Name(id), id)
		}
		names := map[string]int{}
		for i, s := range cfg.Subsets {
			if s.Name == "" || s.Name == "complement" || strings.Contains(s.Name, "#") {
				return "", nil, errcode.New(errcode.Invalid, "%s: subsets[%d] needs a name other than complement, without #", p.Canvas.Name(id), i)
			}
			if _, dup := names[s.Name]; dup {
				return "", nil, errcode.New(errcode.Invalid, "%s: two subsets named %q", p.Canvas.Name(id), s.Name)
			}
			if s.Limit < 0 {
				return "", nil, errcode.New(errcode.Invalid, "%s: subsets[%d]: limit must be positive", p.Canvas.Name(id), i)
			}
			names[s.Name] = i
		}
		upto, ok := names[output]
		if output == "complement" {
			if !cfg.Complement {
				return "", nil, errcode.New(errcode.Invalid, "%s has no complement output (set complement: true)", p.Canvas.Name(id))
			}
			upto, ok = len(cfg.Subsets), true
		}
		if !ok {
			return "", nil, errcode.New(errcode.Invalid, "%s has no output %q", p.Canvas.Name(id), output)
		}
		in, cols, err := single()
		if err != nil {
			return "", nil, err
		}
		// Subsets are taken in order from what the earlier ones left.
		var taken []string
		for i := 0; i <= upto && i <= len(cfg.Subsets); i++ {
			cond := "TRUE"
			limit := ""
			if i < len(cfg.Subsets) {
				s := cfg.Subsets[i]
				if len(s.Rule) > 0 {
					r, err := ParseRule(s.Rule)
					if err != nil {
						return "", nil, errcode.New(errcode.Invalid, "%s subset %s: %v", p.Canvas.Name(id), s.Name, err)
					}
					cond = q.Where(r, "p")
				}
				if s.Limit > 0 {
					limit = " LIMIT " + q.Arg(s.Limit)
				}
			}
			rest := ""
			for _, t := range taken {
				rest += " AND NOT EXISTS (SELECT 1 FROM (" + t + ") t WHERE t.id = s.id)"
			}
			sql := "SELECT s.id AS id, s.data AS data FROM (" + in + ") s JOIN profiles p ON p.workspace = " + ws() +
				" AND p.id = s.id WHERE " + cond + rest + " ORDER BY s.id" + limit
			if i == upto {
				return "SELECT id, data FROM (" + sql + ") sp", cols, nil
			}
			taken = append(taken, sql)
		}
		return "", nil, errcode.New(errcode.Invalid, "%s has no output %q", p.Canvas.Name(id), output)

	case SaveAudience:
		// The population flows through unchanged; whether it may flow on is
		// the activity's outbound setting, checked by the caller that
		// follows a transition out of it.
		return single()
	}
	return "", nil, errcode.New(errcode.Invalid, "%s: unknown type %q", p.Canvas.Name(id), a.Type)
}

// dataOf builds the JSON object of carried columns from profile attributes.
func (q *Query) dataOf(alias string, cols []string) string {
	if q.d == Postgres {
		if len(cols) == 0 {
			return "'{}'::jsonb"
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			a := q.Arg(c)
			parts[i] = a + "::text, " + alias + ".attrs -> " + a
		}
		return "jsonb_build_object(" + strings.Join(parts, ", ") + ")"
	}
	parts := make([]string, 0, 2*len(cols))
	for _, c := range cols {
		parts = append(parts, q.Arg(c), alias+".attrs -> "+q.Arg(`$."`+c+`"`))
	}
	return "json_object(" + strings.Join(parts, ", ") + ")"
}

// jsonText reads one key of a JSON data column as text.
func (q *Query) jsonText(col, key string) string {
	if q.d == Postgres {
		return "(" + col + " ->> " + q.Arg(key) + ")"
	}
	return "CAST(json_extract(" + col + ", " + q.Arg(`$."`+key+`"`) + ") AS TEXT)"
}

func mergeColumns(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, c := range b {
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SaveConfig is a save_audience activity's configuration.
type SaveConfig struct {
	Mode       string `json:"mode"`        // create_or_update or update
	Label      string `json:"label"`       // create_or_update: the audience's label
	Audience   string `json:"audience"`    // update: the audience's id
	UpdateMode string `json:"update_mode"` // replace or append
	Outbound   bool   `json:"outbound"`
}

// SaveConfigOf validates a save_audience activity's configuration.
func (c *Canvas) SaveConfigOf(id string) (SaveConfig, error) {
	a, ok := c.Activities[id]
	if !ok {
		return SaveConfig{}, errcode.New(errcode.Invalid, "no activity %q on the canvas", id)
	}
	if a.Type != SaveAudience {
		return SaveConfig{}, errcode.New(errcode.Invalid, "%s is a %s, not a save_audience", c.Name(id), a.Type)
	}
	var cfg SaveConfig
	dec := json.NewDecoder(strings.NewReader(string(a.Config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, errcode.New(errcode.Invalid, "%s: config: %v", c.Name(id), err)
	}
	switch {
	case cfg.Mode == "create_or_update" && (strings.TrimSpace(cfg.Label) == "" || len(cfg.Label) > 200):
		return cfg, errcode.New(errcode.Invalid, "%s: create_or_update needs a label of 1 to 200 characters", c.Name(id))
	case cfg.Mode == "update" && cfg.Audience == "":
		return cfg, errcode.New(errcode.Invalid, "%s: update needs an audience id", c.Name(id))
	case cfg.Mode != "create_or_update" && cfg.Mode != "update":
		return cfg, errcode.New(errcode.Invalid, "%s: mode must be create_or_update or update", c.Name(id))
	case cfg.UpdateMode != "replace" && cfg.UpdateMode != "append":
		return cfg, errcode.New(errcode.Invalid, "%s: update_mode must be replace or append", c.Name(id))
	}
	return cfg, nil
}

// CheckFlow refuses a transition out of a save_audience whose outbound is
// off: that branch ends there.
func (c *Canvas) CheckFlow(node string) error {
	for _, t := range c.Upstream(node) {
		from := strings.SplitN(t.From, "#", 2)[0]
		if a := c.Activities[from]; a.Type == SaveAudience {
			if cfg, err := c.SaveConfigOf(from); err == nil && !cfg.Outbound {
				return errcode.New(errcode.Invalid, "%s does not pass its population on (its outbound transition is off), so the branch ends there", c.Name(from))
			}
		}
	}
	return nil
}

// SortedIDs lists the canvas's activity ids, for stable output.
func (c *Canvas) SortedIDs() []string {
	ids := make([]string, 0, len(c.Activities))
	for id := range c.Activities {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Page validates an offset and limit (default 50, at most 500).
func Page(offset, limit int) (int, int, error) {
	if offset < 0 || limit < 0 || limit > 500 {
		return 0, 0, errcode.New(errcode.Invalid, "offset must be >= 0 and limit between 1 and 500")
	}
	if limit == 0 {
		limit = 50
	}
	return offset, limit, nil
}
