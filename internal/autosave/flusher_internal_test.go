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
