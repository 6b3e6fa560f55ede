// Package outbox delivers the webhook events the store wrote in the same
// transactions as their changes. Every node runs a Deliverer; they share
// the work through the store's claims (a lease per delivery), and each
// endpoint gets one campaign's events one at a time, in order.
package outbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/webhook"
)

// Store is the outbox's side of the durable store.
type Store interface {
	// ClaimDeliveries leases up to limit due deliveries until now+lease: for
	// each endpoint and campaign, only the oldest pending one, so that
	// events arrive in order.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]webhook.Delivery, error)
	// RecordAttempt logs an attempt and moves the delivery to its state.
	RecordAttempt(ctx context.Context, a webhook.Attempt) error
	// OutboxStats counts what is pending.
	OutboxStats(ctx context.Context) (webhook.Stats, error)
}

// Options tune a Deliverer; zero values take the defaults.
type Options struct {
	Retry    webhook.Retry // DefaultRetry
	Poll     time.Duration // how often to look for due deliveries when idle (500 ms)
	Timeout  time.Duration // one POST (10 s)
	Lease    time.Duration // a claim (60 s; must exceed Timeout)
	Parallel int           // POSTs in flight (8)
	Client   *http.Client  // http.DefaultClient's transport, Timeout set
}

// Deliverer POSTs claimed deliveries until its context ends.
type Deliverer struct {
	store Store
	opts  Options
	log   *slog.Logger
}

// New returns a Deliverer; Run starts it.
func New(store Store, opts Options, log *slog.Logger) *Deliverer {
	if opts.Retry.Base <= 0 {
		opts.Retry = webhook.DefaultRetry
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Lease <= opts.Timeout {
		opts.Lease = max(60*time.Second, 2*opts.Timeout)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Timeout}
	}
	return &Deliverer{store: store, opts: opts, log: log}
}

// Run delivers until ctx ends; it returns once its POSTs in flight ended.
// Claims run while POSTs are in flight: a chain's next event cannot be
// claimed before the one ahead of it is settled (the store's rule), so
// other endpoints and campaigns never wait for a slow receiver.
func (d *Deliverer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, d.opts.Parallel)
	inFlight := 0
	nextStats := time.Time{}
	for ctx.Err() == nil {
		if now := time.Now(); now.After(nextStats) {
			d.stats(ctx)
			nextStats = now.Add(5 * time.Second)
		}
		var batch []webhook.Delivery
		if free := d.opts.Parallel - inFlight; free > 0 {
			var err error
			batch, err = d.store.ClaimDeliveries(ctx, time.Now(), d.opts.Lease, free)
			if err != nil && ctx.Err() == nil {
				d.log.Warn("webhook outbox: claim failed", "err", err)
			}
		}
		for _, dl := range batch {
			inFlight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.deliver(ctx, dl)
				done <- struct{}{}
			}()
		}
		if len(batch) > 0 {
			continue
		}
		// Nothing claimable: wait for a POST to settle (its chain's next
		// event may be due) or for the poll.
		select {
		case <-ctx.Done():
		case <-done:
			inFlight--
		case <-time.After(d.opts.Poll):
		}
	drain:
		for {
			select {
			case <-done:
				inFlight--
			default:
				break drain
			}
		}
	}
}

func (d *Deliverer) stats(ctx context.Context) {
	st, err := d.store.OutboxStats(ctx)
	if err != nil {
		return
	}
	metrics.WebhookPending.Set(float64(st.Pending))
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = time.Since(st.OldestPending).Seconds()
	}
	metrics.WebhookOldestPending.Set(age)
	metrics.WebhookFailed.Set(float64(st.Failed))
}

// deliver POSTs one delivery and records the attempt. The record uses its
// own context: an attempt made is logged even while the node stops.
func (d *Deliverer) deliver(ctx context.Context, dl webhook.Delivery) {
	body := dl.Body()
	start := time.Now()
	status, err := d.post(ctx, dl, body, start)
	a := webhook.Attempt{Event: dl.ID, Endpoint: dl.Endpoint, At: start, Status: status, Duration: time.Since(start), State: webhook.Delivered}
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: the lease runs out and another node retries
		}
		a.Error = err.Error()
		metrics.WebhookFailures.Inc()
		wait, again := d.opts.Retry.After(dl.Attempts + 1)
		a.State, a.NextAt = webhook.Failed, time.Time{}
		if again {
			a.State, a.NextAt = webhook.Pending, time.Now().Add(wait)
		}
		d.log.Info("webhook delivery failed", "event", dl.Key(), "endpoint", dl.Endpoint, "status", status, "err", err, "attempt", dl.Attempts+1, "state", a.State)
	} else {
		metrics.WebhookDelivered.Inc()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.store.RecordAttempt(rctx, a); err != nil {
		d.log.Warn("webhook outbox: cannot record an attempt", "event", dl.Key(), "err", err)
	}
}

func (d *Deliverer) post(ctx context.Context, dl webhook.Delivery, body []byte, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "collab-webhooks/1")
	req.Header.Set("Idempotency-Key", dl.Key())
	req.Header.Set("Collab-Event-Id", dl.Key())
	req.Header.Set("Collab-Event-Type", string(dl.Type))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(dl.Secret, now, body))
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
