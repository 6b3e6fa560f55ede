// Package people remembers who the workspace's users are by name: tokens
// carry a display name ("Ann Lee") beside the user id ("ann"), and what is
// stored by id (history, audiences) is shown by name.
package people

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Store is where names are kept; the durable store implements it.
type Store interface {
	SeePerson(ctx context.Context, workspace, user, name string, at time.Time) error
}

// maxKnown bounds the recorder's memory: past it the cache starts over (the
// store is then written again once per person).
const maxKnown = 10_000

// Recorder writes a user's name to the store the first time this node sees
// it (or sees it change), so that a session's start or an API call costs a
// map lookup, not a write.
type Recorder struct {
	store Store
	log   *slog.Logger

	mu    sync.Mutex
	known map[[2]string]string // workspace, user → name
}

// NewRecorder returns a Recorder writing to store.
func NewRecorder(store Store, log *slog.Logger) *Recorder {
	return &Recorder{store: store, log: log, known: map[[2]string]string{}}
}

// Seen records that user of workspace goes by name. An empty name is
// nothing to record. A store error is logged, never returned: a missing
// name shows the id, which is no reason to refuse the request.
func (r *Recorder) Seen(ctx context.Context, workspace, user, name string) {
	if r == nil || name == "" || user == "" {
		return
	}
	k := [2]string{workspace, user}
	r.mu.Lock()
	was, ok := r.known[k]
	r.mu.Unlock()
	if ok && was == name {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.store.SeePerson(ctx, workspace, user, name, time.Now()); err != nil {
		r.log.Debug("record a name", "user", user, "err", err)
		return
	}
	r.mu.Lock()
	if len(r.known) >= maxKnown {
		clear(r.known)
	}
	r.known[k] = name
	r.mu.Unlock()
}
