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

	mu      sync.Mutex
	known   map[[2]string]string   // workspace, user → name
	writing map[[2]string]struct{} // SeenSoon's writes in flight
	wg      sync.WaitGroup
}

// maxWrites bounds SeenSoon's writes in flight. A name seen while that many
// are out is not written then; the user's next session or request writes it.
const maxWrites = 4

// NewRecorder returns a Recorder writing to store.
func NewRecorder(store Store, log *slog.Logger) *Recorder {
	return &Recorder{store: store, log: log, known: map[[2]string]string{}, writing: map[[2]string]struct{}{}}
}

// Seen records that user of workspace goes by name, before it returns (an
// API request's names are in the answers that follow it). An empty name is
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
	r.write(ctx, k, name)
}

// SeenSoon is Seen on a goroutine of its own, at most maxWrites at a time,
// for a session's hello: on the session's reader the store's deep call
// stack stayed with every idle session (about 2.5 KB each), and a burst of
// hellos waited on the database. The write outlives the session.
func (r *Recorder) SeenSoon(ctx context.Context, workspace, user, name string) {
	if r == nil || name == "" || user == "" {
		return
	}
	k := [2]string{workspace, user}
	r.mu.Lock()
	defer r.mu.Unlock()
	if was, ok := r.known[k]; ok && was == name {
		return
	}
	if _, ok := r.writing[k]; ok || len(r.writing) >= maxWrites {
		return
	}
	r.writing[k] = struct{}{}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.write(context.WithoutCancel(ctx), k, name)
		r.mu.Lock()
		delete(r.writing, k)
		r.mu.Unlock()
	}()
}

func (r *Recorder) write(ctx context.Context, k [2]string, name string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.store.SeePerson(ctx, k[0], k[1], name, time.Now()); err != nil {
		r.log.Debug("record a name", "user", k[1], "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.known) >= maxKnown {
		clear(r.known)
	}
	r.known[k] = name
}

// Wait returns once SeenSoon's writes in flight have ended (at shutdown,
// before the store closes, and in tests).
func (r *Recorder) Wait() {
	if r != nil {
		r.wg.Wait()
	}
}
