package people

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
