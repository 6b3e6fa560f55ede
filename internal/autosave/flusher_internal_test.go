package autosave

import (
	"testing"
	"time"
)

// Backoffs of campaigns that stopped being retried (clean, deleted) are
// forgotten; those still being retried stay.
func TestRetryMapIsBounded(t *testing.T) {
	f := New(nil, nil, Options{MaxBackoff: time.Second, Interval: time.Second}, nil)
	now := time.Now()
	f.retry["gone"] = backoff{next: now.Add(-time.Minute), delay: time.Second}
	f.retry["failing"] = backoff{next: now.Add(time.Second), delay: time.Second}
	f.prune(now)
	if _, ok := f.retry["gone"]; ok || f.Backoffs() != 1 {
		t.Fatalf("retry map after prune: %v", f.retry)
	}
}

func TestRoundWidth(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		n      int
		took   time.Duration
		budget time.Duration
		limit  int
		want   int
	}{
		{"nothing measured yet", 100, 0, time.Second, 8, 1},
		{"one campaign", 1, time.Second, time.Second, 8, 1},
		{"a round that fits one at a time", 100, 5 * ms, time.Second, 8, 1},
		{"just over the budget", 101, 10 * ms, time.Second, 8, 2},
		{"a large round", 1000, 5 * ms, time.Second, 8, 5},
		{"capped by the limit", 1000, 50 * ms, time.Second, 8, 8},
		{"no budget", 10, ms, 0, 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := roundWidth(tc.n, tc.took, tc.budget, tc.limit); got != tc.want {
				t.Fatalf("roundWidth(%d, %v, %v, %d) = %d, want %d", tc.n, tc.took, tc.budget, tc.limit, got, tc.want)
			}
		})
	}
}

func TestMovingAverage(t *testing.T) {
	avg := movingAverage(0, 80*time.Millisecond)
	if avg != 80*time.Millisecond {
		t.Fatalf("first sample: %v", avg)
	}
	if avg = movingAverage(avg, 880*time.Millisecond); avg != 180*time.Millisecond {
		t.Fatalf("one slow sample moves it an eighth of the way: %v", avg)
	}
}
