// Package health watches a node's backends on a timer, so that readiness
// and the collab_*_up gauges are current whether or not anything polls
// /readyz, and so that /readyz answers at once from the last check instead
// of hanging on a backend that does not answer.
package health

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Check is one backend: how to ping it and the gauge that shows it.
type Check struct {
	Name  string
	Ping  func(ctx context.Context) error
	Gauge interface{ Set(float64) } // may be nil
}

// Monitor runs every check each interval, each bounded by timeout.
type Monitor struct {
	checks            []Check
	interval, timeout time.Duration

	mu    sync.Mutex // guards state
	state map[string]error
}

// New returns a Monitor that has run every check once.
func New(ctx context.Context, interval, timeout time.Duration, checks ...Check) *Monitor {
	m := &Monitor{checks: checks, interval: interval, timeout: timeout, state: map[string]error{}}
	m.CheckNow(ctx)
	return m
}

// Run checks on the interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.CheckNow(ctx)
		}
	}
}

// CheckNow runs every check at once, concurrently, and records the results.
func (m *Monitor) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range m.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, m.timeout)
			err := c.Ping(cctx)
			cancel()
			if err != nil && cctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s did not answer within %v: %w", c.Name, m.timeout, err)
			}
			m.set(c, err)
		}()
	}
	wg.Wait()
}

func (m *Monitor) set(c Check, err error) {
	m.mu.Lock()
	m.state[c.Name] = err
	m.mu.Unlock()
	if c.Gauge != nil {
		if err != nil {
			c.Gauge.Set(0)
		} else {
			c.Gauge.Set(1)
		}
	}
}

// Err returns the last result of the named check.
func (m *Monitor) Err(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state[name]
}
