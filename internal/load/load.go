// Package load drives collab servers over the real protocol (WebSockets,
// JSON frames, tokens) the way browsers do: many sessions writing and
// watching campaigns, reconnecting to another node when theirs goes away,
// resending what was not acknowledged. It measures what a user feels: edits
// accepted per second, ack latency, fan-out latency to the other sessions,
// conflicts, errors, reconnects. `collab bench` and the fault tests use it.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collab-dev/collab/internal/auth"
)

// Mode is what writers edit.
type Mode string

const (
	// Fields: each writer replaces its own field /fields/<writer> (or /hot,
	// for the Hot share of its edits, to force conflicts).
	Fields Mode = "fields"
	// Log: each writer appends a sequence number to its own array
	// /log/<writer>, so that a test can check afterwards that every
	// acknowledged edit is stored exactly once.
	Log Mode = "log"
)

// Config is one load run.
type Config struct {
	URLs      []string // base URLs of the nodes (http://host:port); sessions spread over them
	Secret    []byte   // HS256 secret to sign one token per session
	Workspace string
	Campaigns int     // campaigns created for the run
	Writers   int     // writing sessions per campaign
	Watchers  int     // reading sessions per campaign
	Rate      float64 // edits/s over all writers; 0: closed loop (each writer waits for its answer)
	// SessionRate paces each writer to at most this many edits a second, as
	// a client that keeps to the server's request limit does (0: the
	// protocol's default limit, 100; negative: unpaced, to test the limit).
	// A closed-loop writer faster than that would be refused rate_limited
	// and time its own back-off as ack latency.
	SessionRate float64
	Duration    time.Duration
	// Warmup runs the load this long before the measured window opens:
	// counters and histograms start at the window.
	Warmup time.Duration
	Hot    float64 // share of edits aimed at one shared field (0..1), to force conflicts
	Mode   Mode
	// NoBatchIDs sends edits without a batch id, as a client that cannot
	// resend would: an edit answered unavailable (its outcome unknown) is
	// given up, never sent again, and nothing is resent after a reconnect.
	NoBatchIDs bool
	// DialConcurrency bounds parallel connection attempts (default 64).
	DialConcurrency int
	// OnAck, when set, is told every acknowledged edit (campaign, writer,
	// sequence number, rev, duplicate). Log mode's checks use it.
	OnAck func(campaign, writer string, seq, rev int64)
	Log   func(format string, args ...any)
	// HTTP is the client for campaign creation (default http.DefaultClient).
	HTTP *http.Client
}

// Report is what a run measured.
type Report struct {
	Campaigns        int              `json:"campaigns"`
	Sessions         int              `json:"sessions"`
	Writers          int              `json:"writers"`
	Watchers         int              `json:"watchers"`
	ConnectSeconds   float64          `json:"connect_seconds"`
	Seconds          float64          `json:"seconds"`
	Sent             int64            `json:"sent"`
	Accepted         int64            `json:"accepted"`
	AcceptedPerSec   float64          `json:"accepted_per_sec"`
	Conflicts        int64            `json:"conflicts"`
	Errors           map[string]int64 `json:"errors"`
	Reconnects       int64            `json:"reconnects"`
	Resent           int64            `json:"resent"` // batches sent again after a reconnect or a new epoch
	ReconnectSeconds Quantiles        `json:"reconnect_seconds"`
	AckMillis        Quantiles        `json:"ack_ms"`
	FanoutMillis     Quantiles        `json:"fanout_ms"`
	FanoutSamples    int64            `json:"fanout_samples"`
	Server           *Process         `json:"server,omitempty"`
	Client           *Process         `json:"client,omitempty"` // the load generator itself: on one machine, it competes with the server
}

// Run connects every session, drives the load for cfg.Duration, then
// closes everything and reports. ctx cancels the run early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Warmup > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Warmup):
		}
		r.openWindow()
	}
	r.cfg.Log("load: measure start")
	select {
	case <-ctx.Done():
	case <-time.After(cfg.Duration):
	}
	r.cfg.Log("load: measure end")
	return r.Stop(), nil
}

// Runner is a load run in progress.
type Runner struct {
	cfg       Config
	campaigns []string
	sessions  []*session
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	// Writers stop first, on their own context, so that what they sent in
	// the window is answered and fanned out before the readers stop.
	wctx      context.Context
	wcancel   context.CancelFunc
	writers   sync.WaitGroup
	started   time.Time
	connected time.Duration

	sent, accepted, conflicts, reconnects, resent, fanoutN atomic.Int64
	errMu                                                  sync.Mutex
	errs                                                   map[string]int64
	ack, fanout, reconnect                                 *Histogram
	measuring                                              atomic.Bool
}

// Start connects the sessions and starts the writers; Stop ends the run.
func Start(ctx context.Context, cfg Config) (*Runner, error) {
	if len(cfg.URLs) == 0 || cfg.Campaigns <= 0 || cfg.Writers+cfg.Watchers <= 0 {
		return nil, errors.New("load: need URLs, campaigns and writers or watchers")
	}
	if cfg.Mode == "" {
		cfg.Mode = Fields
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 64
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	signer, err := auth.NewSigner(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	r := &Runner{cfg: cfg, errs: map[string]int64{}, ack: NewHistogram(), fanout: NewHistogram(), reconnect: NewHistogram()}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wctx, r.wcancel = context.WithCancel(r.ctx)

	// Campaigns, with a field (or log array) per writer already there.
	admin, _ := signer.Sign(auth.Claims{User: "bench", Name: "bench", Workspace: cfg.Workspace, Role: auth.Admin}, 24*time.Hour)
	for i := 0; i < cfg.Campaigns; i++ {
		doc := map[string]any{"name": fmt.Sprintf("bench %d", i), "hot": 0, "fields": map[string]any{}}
		if cfg.Mode == Log {
			logs := map[string]any{}
			for w := 0; w < cfg.Writers; w++ {
				logs[writerKey(w)] = []any{}
			}
			doc["log"] = logs
		}
		id, err := createCampaign(ctx, cfg.HTTP, cfg.URLs[i%len(cfg.URLs)], admin, doc)
		if err != nil {
			return nil, fmt.Errorf("load: create campaign %d: %w", i, err)
		}
		r.campaigns = append(r.campaigns, id)
	}

	// Sessions: writers first, then watchers, spread over the nodes.
	n := 0
	for _, id := range r.campaigns {
		for w := 0; w < cfg.Writers+cfg.Watchers; w++ {
			s := &session{r: r, idx: n, campaign: id, node: n % len(cfg.URLs), writer: w < cfg.Writers, key: writerKey(w),
				pending: map[string]*batch{}, answered: make(chan struct{}, 1)}
			s.user = fmt.Sprintf("u%d", n)
			s.userB = []byte(s.user)
			tok, err := signer.Sign(auth.Claims{User: s.user, Name: fmt.Sprintf("User %d", n), Workspace: cfg.Workspace, Role: auth.Editor}, 24*time.Hour)
			if err != nil {
				return nil, err
			}
			s.token = tok
			r.sessions = append(r.sessions, s)
			n++
		}
	}
	start := time.Now()
	sem := make(chan struct{}, cfg.DialConcurrency)
	errc := make(chan error, len(r.sessions))
	var dials sync.WaitGroup
	for _, s := range r.sessions {
		dials.Add(1)
		sem <- struct{}{}
		go func(s *session) {
			defer dials.Done()
			defer func() { <-sem }()
			if err := s.connect(ctx); err != nil {
				errc <- err
			}
		}(s)
	}
	dials.Wait()
	close(errc)
	if err := <-errc; err != nil {
		r.Stop()
		return nil, fmt.Errorf("load: connect: %w", err)
	}
	r.connected = time.Since(start)
	cfg.Log("load: %d sessions joined %d campaigns in %v", len(r.sessions), len(r.campaigns), r.connected.Round(time.Millisecond))

	r.started = time.Now()
	r.measuring.Store(cfg.Warmup == 0)
	for _, s := range r.sessions {
		r.wg.Add(1)
		go s.run()
	}
	return r, nil
}

// openWindow ends the warm-up: counts restart from zero now.
func (r *Runner) openWindow() {
	r.sent.Store(0)
	r.accepted.Store(0)
	r.conflicts.Store(0)
	r.fanoutN.Store(0)
	r.errMu.Lock()
	clear(r.errs)
	r.errMu.Unlock()
	r.started = time.Now()
	r.measuring.Store(true)
}

// Campaigns are the run's campaign ids.
func (r *Runner) Campaigns() []string { return r.campaigns }

// settleTimeout bounds how long Stop waits for the answers and fan-outs of
// what was sent in the window.
const settleTimeout = 3 * time.Second

// Stop ends the run: writers stop, then the answers and fan-outs of what
// they sent are awaited (briefly: see settle), then connections close.
func (r *Runner) Stop() *Report {
	elapsed := time.Since(r.started)
	r.wcancel()
	r.writers.Wait()
	r.settle(settleTimeout)
	r.measuring.Store(false)
	r.cancel()
	for _, s := range r.sessions {
		s.close() // which ends its reader
	}
	r.wg.Wait()
	for _, s := range r.sessions {
		r.fanout.merge(s.fan)
		r.fanoutN.Add(s.fanN)
		s.fan, s.fanN = nil, 0
	}
	rep := &Report{
		Campaigns: len(r.campaigns), Sessions: len(r.sessions),
		Writers: r.cfg.Writers * len(r.campaigns), Watchers: r.cfg.Watchers * len(r.campaigns),
		ConnectSeconds: r.connected.Seconds(), Seconds: elapsed.Seconds(),
		Sent: r.sent.Load(), Accepted: r.accepted.Load(), Conflicts: r.conflicts.Load(),
		Reconnects: r.reconnects.Load(), Resent: r.resent.Load(), Errors: map[string]int64{},
		AckMillis: r.ack.Quantiles(), FanoutMillis: r.fanout.Quantiles(), FanoutSamples: r.fanoutN.Load(),
		ReconnectSeconds: r.reconnect.QuantilesScaled(1000),
	}
	if elapsed > 0 {
		rep.AcceptedPerSec = float64(rep.Accepted) / elapsed.Seconds()
	}
	r.errMu.Lock()
	for k, v := range r.errs {
		rep.Errors[k] = v
	}
	r.errMu.Unlock()
	return rep
}

// settle waits, at most d, until no batch awaits its answer and every
// online session has seen its campaign's newest rev: an edit acked just
// before the window closed is then counted with all its fan-outs, instead
// of losing those still on the wire (which a report would show as a
// delivery the server never missed).
func (r *Runner) settle(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.settled() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *Runner) settled() bool {
	newest := map[string]int64{}
	for _, s := range r.sessions {
		s.mu.Lock()
		if len(s.pending) > 0 && s.online {
			s.mu.Unlock()
			return false
		}
		newest[s.campaign] = max(newest[s.campaign], s.rev)
		s.mu.Unlock()
	}
	for _, s := range r.sessions {
		s.mu.Lock()
		behind := s.online && s.rev < newest[s.campaign]
		s.mu.Unlock()
		if behind {
			return false
		}
	}
	return true
}

func (r *Runner) countError(code string) {
	r.errMu.Lock()
	r.errs[code]++
	r.errMu.Unlock()
}

func writerKey(w int) string { return fmt.Sprintf("w%d", w) }

func createCampaign(ctx context.Context, hc *http.Client, base, token string, doc map[string]any) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": doc["name"], "doc": doc})
	req, _ := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(base, "/")+"/v1/campaigns", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("%s: %s", resp.Status, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// jitter returns d scaled by a random factor in [0.5, 1).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
