package session

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
)

// schemaTTL is how long a node trusts the document schema it read. Rooms
// refresh it on their heartbeat, so a schema set on any node applies to
// every node's edits within a heartbeat plus this.
const schemaTTL = 5 * time.Second

// schemaCache holds each workspace's compiled document schema. A store
// that cannot be read keeps the last schema known: edits go on during a
// database outage, checked as before it.
type schemaCache struct {
	src Campaigns
	log *slog.Logger

	mu sync.Mutex // guards m
	m  map[string]schemaEntry
}

type schemaEntry struct {
	schema *campaign.Schema // nil: the workspace has none
	raw    []byte
	at     time.Time
}

// current is the schema as last read, with no I/O: what the edit path
// uses. A room reads it at load (get) and its heartbeat keeps it fresh.
func (c *schemaCache) current(workspace string) *campaign.Schema {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[workspace].schema
}

// get returns the workspace's schema, read again from the store once it is
// older than schemaTTL.
func (c *schemaCache) get(ctx context.Context, workspace string) (*campaign.Schema, error) {
	c.mu.Lock()
	e, ok := c.m[workspace]
	c.mu.Unlock()
	if ok && time.Since(e.at) < schemaTTL {
		return e.schema, nil
	}
	raw, err := c.src.DocumentSchema(ctx, workspace)
	if err != nil {
		if ok {
			return e.schema, nil
		}
		return nil, err
	}
	next := schemaEntry{raw: raw, at: time.Now()}
	switch {
	case raw == nil:
	case ok && bytes.Equal(raw, e.raw):
		next.schema = e.schema
	default:
		if next.schema, err = campaign.CompileSchema(raw); err != nil {
			// Stored schemas were compiled when set: this one no longer
			// compiles (a library change?). Edits go on unchecked, loudly.
			c.log.Error("the workspace's document schema does not compile; edits are not checked against it", "workspace", workspace, "err", err)
		}
	}
	c.mu.Lock()
	c.m[workspace] = next
	c.mu.Unlock()
	return next.schema, nil
}
