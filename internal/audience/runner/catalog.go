package runner

import (
	"context"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/audience"
)

// CatalogStore is what the catalog reads; the durable store implements it.
type CatalogStore interface {
	ProfileCount(ctx context.Context, workspace string) (int64, error)
	ProfileAttributes(ctx context.Context, workspace string, total, sample int64) (audience.Attributes, error)
	EstimateMatches(ctx context.Context, workspace string, r *audience.Rule, total, sample int64) (int64, bool, error)
}

// catalogTTL is how long a workspace's attribute list is reused: an import
// forgets it at once, so this only bounds how stale the counts of a
// workspace written to elsewhere get.
const catalogTTL = time.Minute

// Catalog answers the rule builder: the workspace's attributes (computed in
// SQL over a bounded sample, kept a minute per workspace) and the live
// count of a rule being edited.
type Catalog struct {
	store CatalogStore
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*catalogEntry
}

type catalogEntry struct {
	once  chan struct{} // closed once attrs and err are set
	at    time.Time
	attrs audience.Attributes
	err   error
}

// NewCatalog returns a Catalog on a store.
func NewCatalog(st CatalogStore) *Catalog {
	return &Catalog{store: st, now: time.Now, m: map[string]*catalogEntry{}}
}

// maxCatalogs bounds the cache: past it, it starts over.
const maxCatalogs = 1000

// Attributes returns the workspace's attributes. Concurrent callers share
// one computation.
func (c *Catalog) Attributes(ctx context.Context, ws string) (audience.Attributes, error) {
	c.mu.Lock()
	e := c.m[ws]
	if e != nil {
		select {
		case <-e.once:
			if e.err != nil || c.now().Sub(e.at) > catalogTTL {
				e = nil
			}
		default: // being computed: wait for it below
		}
	}
	mine := false
	if e == nil {
		if len(c.m) >= maxCatalogs {
			clear(c.m)
		}
		e = &catalogEntry{once: make(chan struct{})}
		c.m[ws] = e
		mine = true
	}
	c.mu.Unlock()
	if mine {
		e.attrs, e.err = c.compute(ctx, ws)
		e.at = c.now()
		close(e.once)
	}
	select {
	case <-e.once:
		return e.attrs, e.err
	case <-ctx.Done():
		return audience.Attributes{}, ctx.Err()
	}
}

func (c *Catalog) compute(ctx context.Context, ws string) (audience.Attributes, error) {
	total, err := c.store.ProfileCount(ctx, ws)
	if err != nil {
		return audience.Attributes{}, err
	}
	return c.store.ProfileAttributes(ctx, ws, total, audience.AttributesSample)
}

// Forget drops a workspace's list (its profiles changed).
func (c *Catalog) Forget(ws string) {
	c.mu.Lock()
	delete(c.m, ws)
	c.mu.Unlock()
}

// Unknown is a rule field no profile of the sample holds, with the known
// attribute it most likely meant.
type Unknown struct {
	Field      string `json:"field"`
	Suggestion string `json:"suggestion,omitempty"`
}

// Count is a live count: an estimate above the sample size.
type Count struct {
	Count    int64     `json:"count"`
	Exact    bool      `json:"exact"`
	Profiles int64     `json:"profiles"`
	Unknown  []Unknown `json:"unknown"`
}

// Count counts r's matches and flags the fields it reads that the
// workspace's attributes do not hold.
func (c *Catalog) Count(ctx context.Context, ws string, r *audience.Rule) (Count, error) {
	attrs, err := c.Attributes(ctx, ws)
	if err != nil {
		return Count{}, err
	}
	out := Count{Profiles: attrs.Profiles, Unknown: c.unknown(attrs, r)}
	out.Count, out.Exact, err = c.store.EstimateMatches(ctx, ws, r, attrs.Profiles, audience.CountSample)
	return out, err
}

func (c *Catalog) unknown(attrs audience.Attributes, r *audience.Rule) []Unknown {
	known := make([]string, 0, len(attrs.Attributes)+1)
	has := map[string]bool{"id": true}
	for _, a := range attrs.Attributes {
		known = append(known, a.Key)
		has[a.Key] = true
	}
	out := []Unknown{}
	for _, f := range r.Fields() {
		if !has[f] {
			out = append(out, Unknown{Field: f, Suggestion: audience.Suggest(f, known)})
		}
	}
	return out
}
