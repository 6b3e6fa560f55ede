// Package metrics holds collab's Prometheus metrics, all named collab_*, in
// one registry that /metrics serves. Keeping them together gives operators
// one page to read for what can be alerted on.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is where every collab metric is registered.
var Registry = prometheus.NewRegistry()

var (
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collab_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	Sessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_sessions", Help: "Open WebSocket sessions on this node.",
	})
	SessionsParked = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_sessions_parked", Help: "Idle sessions on this node held by its poller, with no reader goroutine.",
	})
	Rooms = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_campaigns_open", Help: "Campaigns with at least one session on this node.",
	})
	Messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collab_messages_total", Help: "Client messages received, by type.",
	}, []string{"type"})
	Errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collab_errors_total", Help: "Error replies sent to sessions, by code.",
	}, []string{"code"})
	Edits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_edits_accepted_total", Help: "Edit batches accepted (acknowledged) on this node.",
	})
	Conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_edit_conflicts_total", Help: "Edit batches refused because another session wrote first.",
	})
	WriterPasses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_writer_passes_total", Help: "Session writer passes, each one write(2) of every frame queued for the session.",
	})
	FramesSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_frames_sent_total", Help: "WebSocket frames written to sessions (divided by collab_writer_passes_total: frames per write).",
	})
	SlowClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_slow_consumer_closes_total", Help: "Sessions closed because they could not keep up with their updates.",
	})
	FanoutLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "collab_fanout_lag_seconds", Help: "Time from an edit's acceptance in Redis to its update being queued to this node's sessions.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	Flushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collab_flushes_total", Help: "Draft flushes to the durable store, by trigger and result.",
	}, []string{"trigger", "result"})
	FlushSources = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collab_flush_sources_total", Help: "Working drafts a flush took from this node's room (room) or rebuilt from the saved draft and the log (log).",
	}, []string{"source"})
	OldestUnflushed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_oldest_unflushed_edit_age_seconds", Help: "Age of the oldest edit not yet in the durable store (0 when all are).",
	})
	StoreUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_store_up", Help: "1 when the durable store answered its last check.",
	})
	RedisUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_redis_up", Help: "1 when Redis answered its last check.",
	})
)

// The webhook outbox's figures (every node reports the shared outbox).
var (
	WebhookPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_webhook_pending", Help: "Webhook deliveries not yet made (all nodes' outbox).",
	})
	WebhookOldestPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_webhook_oldest_pending_seconds", Help: "Age of the oldest webhook event still to deliver.",
	})
	WebhookFailed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "collab_webhook_failed", Help: "Webhook deliveries given up after every retry (a replay sends them again).",
	})
	WebhookDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_webhook_deliveries_total", Help: "Webhook deliveries this node made (2xx answers).",
	})
	WebhookFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collab_webhook_failures_total", Help: "Webhook attempts this node made that failed (retried later).",
	})
)

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		HTTPRequests, Sessions, SessionsParked, Rooms, Messages, Errors, Edits, Conflicts, SlowClosed, WriterPasses, FramesSent, FanoutLag,
		Flushes, FlushSources, OldestUnflushed, StoreUp, RedisUp,
		WebhookPending, WebhookOldestPending, WebhookFailed, WebhookDelivered, WebhookFailures)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler { return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{}) }
