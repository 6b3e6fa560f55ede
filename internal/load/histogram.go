package load

import (
	"math"
	"sync/atomic"
	"time"
)

// Histogram records durations in logarithmic buckets 2% wide, from 1 µs to
// about 17 minutes: constant memory, lock-free, precise to 2%.
type Histogram struct {
	buckets [histBuckets]atomic.Int64
	max     atomic.Int64
	n       atomic.Int64
}

const (
	histGrowth  = 1.02
	histBuckets = 1100
)

var log2Growth = math.Log2(histGrowth)

// log2Frac holds log2(1+f) at the middle of each 1/1024 step of f in [0, 1):
// with the float's exponent, a log2 good to 0.1% (a twentieth of a
// bucket) for a table read instead of a math.Log per sample, of which a
// load generator records millions a second.
var log2Frac = func() (t [1024]float64) {
	for i := range t {
		t[i] = math.Log2(1 + (float64(i)+0.5)/1024)
	}
	return t
}()

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// bucket returns a duration's bucket and its microseconds (at least 1).
func bucket(d time.Duration) (i int, us int64) { return bucketMicros(d.Microseconds()) }

func bucketMicros(us int64) (int, int64) {
	us = max(us, 1)
	bits := math.Float64bits(float64(us))
	log2 := float64(int(bits>>52)-1023) + log2Frac[bits>>42&1023]
	return min(int(log2/log2Growth), histBuckets-1), us
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	i, us := bucket(d)
	h.buckets[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Quantiles are latencies in milliseconds (or as scaled).
type Quantiles struct {
	N   int64   `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Quantiles reports p50, p90, p99 and max in milliseconds.
func (h *Histogram) Quantiles() Quantiles { return h.QuantilesScaled(1) }

// QuantilesScaled reports them in milliseconds divided by div.
func (h *Histogram) QuantilesScaled(div float64) Quantiles {
	n := h.n.Load()
	q := Quantiles{N: n, Max: float64(h.max.Load()) / 1000 / div}
	if n == 0 {
		return q
	}
	targets := []struct {
		p   float64
		dst *float64
	}{{0.50, &q.P50}, {0.90, &q.P90}, {0.99, &q.P99}}
	var seen int64
	t := 0
	for i := 0; i < histBuckets && t < len(targets); i++ {
		seen += h.buckets[i].Load()
		for t < len(targets) && float64(seen) >= targets[t].p*float64(n) {
			// The bucket's geometric middle, in ms.
			*targets[t].dst = math.Pow(histGrowth, float64(i)+0.5) / 1000 / div
			t++
		}
	}
	for _, x := range targets {
		if *x.dst > q.Max {
			*x.dst = q.Max
		}
	}
	return q
}

// localHistogram is a Histogram for one goroutine: plain counters, no
// atomics, so that many readers recording millions of samples a second do
// not contend on shared cache lines. Merge adds it into a Histogram.
type localHistogram struct {
	buckets [histBuckets]int64
	max, n  int64
}

func (h *localHistogram) record(d time.Duration) { h.recordMicros(d.Microseconds()) }

// recordMicros adds one duration given in microseconds.
func (h *localHistogram) recordMicros(us int64) {
	i, us := bucketMicros(us)
	h.buckets[i]++
	h.n++
	h.max = max(h.max, us)
}

// merge adds l's samples to h.
func (h *Histogram) merge(l *localHistogram) {
	if l == nil || l.n == 0 {
		return
	}
	for i, c := range l.buckets {
		if c != 0 {
			h.buckets[i].Add(c)
		}
	}
	h.n.Add(l.n)
	for {
		m := h.max.Load()
		if l.max <= m || h.max.CompareAndSwap(m, l.max) {
			break
		}
	}
}
