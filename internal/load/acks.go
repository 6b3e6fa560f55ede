package load

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Acks records what a log-mode run saw acknowledged (pass Record as
// Config.OnAck) and checks it against stored drafts: every acknowledged
// edit must be there, once.
type Acks struct {
	mu   sync.Mutex
	seqs map[string]map[int64]bool // campaign/writer -> acknowledged sequence numbers
	revs map[string][]Ack          // campaign -> acknowledgements in arrival order
	n    int
}

// Ack is one acknowledgement: the rev the edit got, and when.
type Ack struct {
	Rev int64
	At  time.Time
}

// NewAcks returns an empty record.
func NewAcks() *Acks {
	return &Acks{seqs: map[string]map[int64]bool{}, revs: map[string][]Ack{}}
}

// Record is a Config.OnAck.
func (a *Acks) Record(campaign, writer string, seq, rev int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := campaign + "/" + writer
	if a.seqs[k] == nil {
		a.seqs[k] = map[int64]bool{}
	}
	if !a.seqs[k][seq] {
		a.seqs[k][seq] = true
		a.n++
	}
	a.revs[campaign] = append(a.revs[campaign], Ack{Rev: rev, At: time.Now()})
}

// Count is how many distinct edits were acknowledged.
func (a *Acks) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// Revs returns a campaign's acknowledgements in arrival order.
func (a *Acks) Revs(campaign string) []Ack {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Ack(nil), a.revs[campaign]...)
}

// Verdict is what a store holds against what was acknowledged.
type Verdict struct {
	Acked, Stored, Lost, Twice int
}

// Add sums two verdicts.
func (v Verdict) Add(o Verdict) Verdict {
	return Verdict{v.Acked + o.Acked, v.Stored + o.Stored, v.Lost + o.Lost, v.Twice + o.Twice}
}

// Check compares one campaign's stored draft (its "log" arrays, one per
// writer) with the edits acknowledged for it.
func (a *Acks) Check(campaign string, draft []byte) (Verdict, error) {
	var doc struct {
		Log map[string][]int64 `json:"log"`
	}
	if err := json.Unmarshal(draft, &doc); err != nil {
		return Verdict{}, fmt.Errorf("campaign %s: draft: %w", campaign, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var v Verdict
	for w, seqs := range doc.Log {
		seen := map[int64]int{}
		for _, s := range seqs {
			if seen[s]++; seen[s] == 2 {
				v.Twice++
			}
		}
		for s := range a.seqs[campaign+"/"+w] {
			v.Acked++
			if seen[s] > 0 {
				v.Stored++
			} else {
				v.Lost++
			}
		}
	}
	return v, nil
}
