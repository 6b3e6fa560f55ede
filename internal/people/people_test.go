package people

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

type fakeStore struct {
	writes []string
	fail   bool
}

func (f *fakeStore) SeePerson(_ context.Context, ws, user, name string, _ time.Time) error {
	if f.fail {
		return errors.New("down")
	}
	f.writes = append(f.writes, ws+"/"+user+"="+name)
	return nil
}

func TestRecorderWritesOncePerName(t *testing.T) {
	st := &fakeStore{}
	r := NewRecorder(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	r.Seen(ctx, "w1", "ann", "Ann")
	r.Seen(ctx, "w1", "ann", "Ann")     // known: no write
	r.Seen(ctx, "w2", "ann", "Ann")     // another workspace
	r.Seen(ctx, "w1", "ann", "Ann Lee") // renamed
	r.Seen(ctx, "w1", "bob", "")        // nothing to record
	want := []string{"w1/ann=Ann", "w2/ann=Ann", "w1/ann=Ann Lee"}
	if len(st.writes) != len(want) {
		t.Fatalf("writes %v, want %v", st.writes, want)
	}
	for i := range want {
		if st.writes[i] != want[i] {
			t.Fatalf("writes %v, want %v", st.writes, want)
		}
	}
	// A failed write is tried again next time.
	st.fail = true
	r.Seen(ctx, "w1", "cid", "Cid")
	st.fail = false
	r.Seen(ctx, "w1", "cid", "Cid")
	if last := st.writes[len(st.writes)-1]; last != "w1/cid=Cid" {
		t.Fatalf("failed write not retried: %v", st.writes)
	}
}

type slowStore struct {
	mu      sync.Mutex
	started []string
	release chan struct{}
}

func (s *slowStore) SeePerson(ctx context.Context, ws, user, name string, _ time.Time) error {
	s.mu.Lock()
	s.started = append(s.started, user)
	s.mu.Unlock()
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SeenSoon: a slow store never holds up the caller, at most maxWrites
// writes are out, and the caller's context ending (a session closing) does
// not end them.
func TestSeenSoon(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	r := NewRecorder(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			r.SeenSoon(ctx, "w1", fmt.Sprint("u", i), "U")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Seen waited for the store")
	}
	cancel()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		st.mu.Lock()
		n := len(st.started)
		st.mu.Unlock()
		if n == maxWrites {
			break
		}
		if n > maxWrites || time.Now().After(deadline) {
			t.Fatalf("%d writes started, want %d", n, maxWrites)
		}
	}
	close(st.release)
	r.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.known) != maxWrites || len(r.writing) != 0 {
		t.Fatalf("known %v, writing %v", r.known, r.writing)
	}
}
