package health

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type gauge struct{ v atomic.Value }

func (g *gauge) Set(v float64) { g.v.Store(v) }

// The gauge and the state follow the backend without anyone asking, and a
// backend that hangs is reported down within the timeout.
func TestMonitorFollowsTheBackend(t *testing.T) {
	var down, hang atomic.Bool
	g := &gauge{}
	ping := func(ctx context.Context) error {
		if hang.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		if down.Load() {
			return errors.New("refused")
		}
		return nil
	}
	m := New(context.Background(), 20*time.Millisecond, 50*time.Millisecond, Check{Name: "redis", Ping: ping, Gauge: g})
	if m.Err("redis") != nil || g.v.Load() != 1.0 {
		t.Fatalf("initial: %v %v", m.Err("redis"), g.v.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("never %s", what)
	}
	down.Store(true)
	waitFor("down", func() bool { return m.Err("redis") != nil && g.v.Load() == 0.0 })
	down.Store(false)
	waitFor("up again", func() bool { return m.Err("redis") == nil && g.v.Load() == 1.0 })
	hang.Store(true)
	start := time.Now()
	waitFor("down on a hang", func() bool { return m.Err("redis") != nil })
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a hanging backend took %v to show", took)
	}
}
