package load

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
)

// batch is one edit a session sent and has no answer for yet.
type batch struct {
	id   string
	seq  int64
	op   string // the JSON Patch operation
	base int64  // kept across reconnects (conflicts are judged against it); a new epoch rebases it
	sent time.Time
}

// frame is the edit message; a resend carries the same id. Without ids the
// ref alone names it.
func (b *batch) frame(campaign string, withID bool) []byte {
	id := `,"id":"` + b.id + `"`
	if !withID {
		id = ""
	}
	return []byte(`{"type":"edit","campaign":"` + campaign + `","base":` + strconv.FormatInt(b.base, 10) +
		id + `,"ref":"` + b.id + `","ops":[` + b.op + `]}`)
}

// acked is an acknowledged batch no `saved` has covered yet: after a new
// epoch it is sent again (the server applies it only if Redis lost it).
type acked struct {
	b   *batch
	rev int64
}

type session struct {
	r        *Runner
	idx      int
	campaign string
	key      string // the writer's field / log name
	user     string // the token's user id
	token    string
	writer   bool
	answered chan struct{}

	mu      sync.Mutex
	node    int
	conn    *wsConn
	online  bool
	rev     int64
	epoch   string
	resync  bool
	seq     int64
	pending map[string]*batch
	order   []string // pending ids in send order
	unsaved []acked
	closing bool

	// Owned by the reader goroutine (read by Stop once it ended).
	userB []byte
	fan   *localHistogram
	fanN  int64
}

// connect dials the session's node, authenticates on the upgrade, joins
// (with since after a first join) and reads until the join is answered.
func (s *session) connect(ctx context.Context) error {
	s.mu.Lock()
	url := s.r.cfg.URLs[s.node]
	since, epoch, rejoin := s.rev, s.epoch, s.epoch != ""
	s.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(strings.TrimSuffix(url, "/"), "http") + "/v1/ws"
	conn, err := dialWS(dctx, ws, []string{protocol.SubprotocolBatch, protocol.Subprotocol},
		http.Header{"Authorization": {"Bearer " + s.token}})
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	if dl, ok := dctx.Deadline(); ok {
		conn.conn.SetReadDeadline(dl)
	}
	join := map[string]any{"type": "join", "campaign": s.campaign}
	if rejoin {
		join["since"], join["epoch"] = since, epoch
	}
	frame, _ := json.Marshal(join)
	if err := conn.writeText(frame); err != nil {
		conn.closeNow()
		return fmt.Errorf("join: %w", err)
	}
	s.mu.Lock()
	if s.closing { // the run ended while this dialled: nobody would close it
		s.mu.Unlock()
		conn.closeNow()
		return errWSClosed
	}
	s.conn = conn
	s.mu.Unlock()
	// Frames until the join's answer; what comes after it in its frame is
	// handled too.
	for joined := false; !joined; {
		data, err := conn.read()
		if err != nil {
			conn.closeNow()
			return fmt.Errorf("join %s on %s: %w", s.campaign, url, err)
		}
		for rest := data; len(rest) > 0; {
			var line []byte
			line, rest = protocol.NextMessage(rest)
			switch typ := s.handle(line); {
			case typ == "error" && !joined:
				conn.closeNow()
				return fmt.Errorf("join %s on %s: %s", s.campaign, url, line)
			case typ == "snapshot" || typ == "joined":
				joined = true
			}
		}
	}
	conn.conn.SetReadDeadline(time.Time{})
	s.mu.Lock()
	s.online = true
	s.mu.Unlock()
	return nil
}

func (s *session) close() {
	s.mu.Lock()
	s.closing = true
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.close(1000, "bench done")
	}
}

// run reads until the run ends, reconnecting (to the next node) whenever
// the connection fails, and writes if the session is a writer.
func (s *session) run() {
	r := s.r
	defer r.wg.Done()
	if s.writer {
		r.writers.Add(1)
		go s.write()
	}
	for {
		s.read()
		if r.ctx.Err() != nil {
			return
		}
		down := time.Now()
		for attempt := 0; ; attempt++ {
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(jitter(min(2*time.Second, 100*time.Millisecond<<attempt))):
			}
			s.mu.Lock()
			s.node = (s.node + 1) % len(r.cfg.URLs)
			s.mu.Unlock()
			if err := s.connect(r.ctx); err == nil {
				break
			} else if attempt%10 == 9 {
				r.cfg.Log("load: session %d still reconnecting: %v", s.idx, err)
			}
		}
		r.reconnects.Add(1)
		r.reconnect.Record(time.Since(down))
		s.resend()
	}
}

func (s *session) read() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	for {
		data, err := c.read()
		if err != nil {
			s.mu.Lock()
			s.online = false
			s.mu.Unlock()
			c.closeNow()
			return
		}
		s.frame(data)
	}
}

// frame handles one frame: on the batch subprotocol, several messages one
// per line. Updates, nearly all of what a session reads, take a fast path:
// no decoding, no allocation, the session's lock once per frame, and
// fan-out samples into the session's own histogram.
func (s *session) frame(data []byte) {
	r := s.r
	nowUS := time.Now().UnixMicro()
	measuring := r.measuring.Load()
	var maxRev int64
	for len(data) > 0 {
		var line []byte
		line, data = protocol.NextMessage(data)
		if !protocol.IsUpdate(line) {
			s.handle(line)
			continue
		}
		rev, id, user, ok := scanTail(line)
		if !ok {
			s.handle(line)
			continue
		}
		if bytes.Equal(user, s.userB) && s.hasPending() {
			s.handle(line) // maybe our own batch, replayed after a reconnect
			continue
		}
		maxRev = max(maxRev, rev)
		if us := sentMicros(id); measuring && us > 0 {
			if s.fan == nil {
				s.fan = &localHistogram{}
			}
			s.fan.recordMicros(nowUS - us)
			s.fanN++
		}
	}
	if maxRev > 0 {
		s.mu.Lock()
		if maxRev > s.rev {
			s.rev = maxRev
		}
		s.mu.Unlock()
	}
}

func (s *session) hasPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// scanTail reads an update's rev, batch id (nil when it has none) and
// author's user id, as slices of the frame, without decoding it. It walks
// the frame's tail by its quotes, as the server writes it
// (..."by":{...,"user":"U"}[,"id":"I"],"at":T}): the ops before it may
// hold anything. Anything else is not ok, and takes the full decode.
func scanTail(data []byte) (rev int64, id, user []byte, ok bool) {
	rev = protocol.FrameRev(data)
	if rev <= 0 {
		return 0, nil, nil, false
	}
	// From the end: },"at":T} then ,"id":"I" when there is one, then
	// "user":"U"} closing by. Each value is found by its opening quote, so
	// a quote inside one (escaped) fails a key check: not ok.
	j := len(data) - 1
	if j < 0 || data[j] != '}' {
		return 0, nil, nil, false
	}
	for j--; j >= 0 && data[j] >= '0' && data[j] <= '9'; j-- {
	}
	if j < 6 || string(data[j-5:j+1]) != `,"at":` {
		return 0, nil, nil, false
	}
	j -= 6 // the end of the id's value, or of by
	if data[j] == '"' {
		k := bytes.LastIndexByte(data[:j], '"')
		if k < 7 || string(data[k-6:k+1]) != `,"id":"` {
			return 0, nil, nil, false
		}
		id = data[k+1 : j]
		j = k - 7
	}
	if j < 1 || data[j] != '}' || data[j-1] != '"' {
		return 0, nil, nil, false
	}
	k := bytes.LastIndexByte(data[:j-1], '"')
	if k < 7 || string(data[k-7:k+1]) != `"user":"` {
		return 0, nil, nil, false
	}
	return rev, id, data[k+1 : j-1], true
}

var ackPrefix = []byte(`{"type":"ack","ref":"`)

// scanAck reads an ack's string ref, rev and duplicate flag without
// decoding it, in the layout the server writes
// ({"type":"ack","ref":"R","campaign":"C","rev":N[,"duplicate":true]}).
// Anything else (an escape in the ref, another layout) is not ok, and takes
// the full decode.
func scanAck(data []byte) (ref []byte, rev int64, dup, ok bool) {
	if !bytes.HasPrefix(data, ackPrefix) {
		return nil, 0, false, false
	}
	rest := data[len(ackPrefix):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 || bytes.IndexByte(rest[:q], '\\') >= 0 {
		return nil, 0, false, false
	}
	ref, rest = rest[:q], rest[q:]
	if !bytes.HasPrefix(rest, []byte(`","campaign":"`)) {
		return nil, 0, false, false
	}
	rest = rest[len(`","campaign":"`):]
	if q = bytes.IndexByte(rest, '"'); q < 0 || bytes.IndexByte(rest[:q], '\\') >= 0 {
		return nil, 0, false, false
	}
	rest = rest[q:]
	if !bytes.HasPrefix(rest, []byte(`","rev":`)) {
		return nil, 0, false, false
	}
	rest = rest[len(`","rev":`):]
	n := 0
	for n < len(rest) && n < 19 && rest[n] >= '0' && rest[n] <= '9' {
		rev = rev*10 + int64(rest[n]-'0')
		n++
	}
	switch string(rest[n:]) {
	case "}":
	case `,"duplicate":true}`:
		dup = true
	default:
		return nil, 0, false, false
	}
	return ref, rev, dup, n > 0
}

// sentMicros reads the send time a bench batch id carries (".<unix µs>" at
// its end; 0 when there is none).
func sentMicros(id []byte) int64 {
	var us, scale int64 = 0, 1
	for j := len(id) - 1; j >= 0; j-- {
		c := id[j]
		switch {
		case c == '.':
			if scale == 1 {
				return 0
			}
			return us
		case c < '0' || c > '9' || scale > 1e17:
			return 0
		}
		us += int64(c-'0') * scale
		scale *= 10
	}
	return 0
}

// resend sends every unanswered batch again, in order, with its own id: the
// server answers those it already applied as duplicates.
func (s *session) resend() {
	if s.r.cfg.NoBatchIDs {
		// Without an id a resend could apply an edit twice: give them up.
		s.mu.Lock()
		ids := make([]string, 0, len(s.pending))
		for id := range s.pending {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		for _, id := range ids {
			s.answer(id, 0, false, false)
		}
		return
	}
	s.mu.Lock()
	batches := make([]*batch, 0, len(s.pending))
	for _, b := range s.pending {
		batches = append(batches, b)
	}
	slices.SortFunc(batches, func(a, b *batch) int { return cmp.Compare(a.seq, b.seq) })
	frames := make([][]byte, len(batches))
	for i, b := range batches {
		frames[i] = b.frame(s.campaign, true)
	}
	c := s.conn
	s.mu.Unlock()
	for _, f := range frames {
		if err := c.writeText(f); err != nil {
			return
		}
		s.r.resent.Add(1)
	}
}

func (s *session) write() {
	r := s.r
	defer r.writers.Done()
	var tick *time.Ticker
	if r.cfg.Rate > 0 {
		every := time.Duration(float64(time.Second) * float64(len(r.campaigns)*r.cfg.Writers) / r.cfg.Rate)
		// Spread the writers' first edits over one period.
		select {
		case <-time.After(time.Duration(s.idx%1000) * every / 1000):
		case <-r.wctx.Done():
			return
		}
		tick = time.NewTicker(every)
		defer tick.Stop()
	}
	pace := r.cfg.SessionRate
	if pace == 0 {
		pace = DefaultSessionRate
	}
	var next time.Time                // the earliest send the pace allows
	pause := time.NewTimer(time.Hour) // reused: one timer per edit would be the tool's own garbage
	pause.Stop()
	defer pause.Stop()
	for r.wctx.Err() == nil {
		if pace > 0 {
			now := time.Now()
			if wait := next.Sub(now); wait > 0 {
				pause.Reset(wait)
				select {
				case <-pause.C:
				case <-r.wctx.Done():
					return
				}
				now = next
			}
			// A burst of at most paceBurst edits after a pause: the
			// server's limit allows 200.
			every := time.Duration(float64(time.Second) / pace)
			if floor := now.Add(-paceBurst * every); next.Before(floor) {
				next = floor
			}
			next = next.Add(every)
		}
		if tick != nil {
			select {
			case <-tick.C:
			case <-r.wctx.Done():
				return
			}
		}
		sent := s.send()
		if tick == nil {
			if !sent {
				// Offline: wait a little for the reconnect.
				select {
				case <-time.After(20 * time.Millisecond):
				case <-r.wctx.Done():
					return
				}
				continue
			}
			// The same reused timer as the pace: a closed loop arms it once per
			// edit, and time.After would make a timer and a channel each time.
			pause.Reset(10 * time.Second)
			select {
			case <-s.answered:
				pause.Stop()
			case <-pause.C:
			case <-r.wctx.Done():
				return
			}
		}
	}
}

// DefaultSessionRate is the protocol's default request limit per session.
const DefaultSessionRate = 100

const paceBurst = 10

// send makes the next batch and sends it; offline, it is kept for the
// reconnect (in log mode) or not made (closed loop).
func (s *session) send() bool {
	r := s.r
	s.mu.Lock()
	if !s.online && (r.cfg.Mode != Log || r.cfg.Rate == 0) {
		s.mu.Unlock()
		return false
	}
	s.seq++
	seq := s.seq
	now := time.Now()
	id := strconv.Itoa(s.idx) + "." + strconv.FormatInt(seq, 10) + "." + strconv.FormatInt(now.UnixMicro(), 10)
	var op string
	switch {
	case r.cfg.Mode == Log:
		op = `{"op":"add","path":"/log/` + s.key + `/-","value":` + strconv.FormatInt(seq, 10) + `}`
	case r.cfg.Hot > 0 && rand.Float64() < r.cfg.Hot:
		op = `{"op":"replace","path":"/hot","value":` + strconv.FormatInt(seq, 10) + `}`
	default:
		op = `{"op":"add","path":"/fields/` + s.key + `","value":` + strconv.FormatInt(seq, 10) + `}`
	}
	b := &batch{id: id, seq: seq, op: op, base: s.rev, sent: now}
	frame := b.frame(s.campaign, !r.cfg.NoBatchIDs)
	s.pending[id] = b
	online, c := s.online, s.conn
	s.mu.Unlock()
	r.sent.Add(1)
	if !online {
		return true
	}
	if err := c.writeText(frame); err != nil {
		return false
	}
	return true
}

// message is the part of a server message the load client reads.
type message struct {
	Type       string          `json:"type"`
	Ref        json.RawMessage `json:"ref"`
	ID         json.RawMessage `json:"id"`
	Rev        int64           `json:"rev"`
	Epoch      string          `json:"epoch"`
	EpochStart *int64          `json:"epoch_start"`
	Reason     string          `json:"reason"`
	Code       string          `json:"code"`
	Duplicate  bool            `json:"duplicate"`
	By         struct {
		User string `json:"user"`
	} `json:"by"`
}

func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// handle applies one server message to the session's state; it returns the
// message type.
func (s *session) handle(data []byte) string {
	r := s.r
	if protocol.IsUpdate(data) {
		// Updates are most of what a session reads (every edit, to every
		// other session): read the three fields needed without decoding the
		// whole message, so the load generator costs less than the server.
		if rev, id, user, ok := scanUpdate(data); ok {
			s.update(rev, id, user, time.Now())
			return "update"
		}
	}
	if ref, rev, dup, ok := scanAck(data); ok {
		// An ack per accepted edit: read as the server writes it.
		s.answer(string(ref), rev, dup, true)
		return "ack"
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		r.countError("malformed_reply")
		return ""
	}
	switch m.Type {
	case "update":
		s.update(m.Rev, unquote(m.ID), m.By.User, time.Now())
	case "ack":
		s.answer(unquote(m.Ref), m.Rev, m.Duplicate, true)
	case "refresh":
		if m.Reason == "conflict" {
			r.conflicts.Add(1)
			s.mu.Lock()
			if m.Rev > s.rev {
				s.rev = m.Rev
			}
			s.mu.Unlock()
			s.answer(unquote(m.Ref), 0, false, false)
		} else {
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
		}
	case "snapshot":
		s.mu.Lock()
		newEpoch := s.epoch != "" && m.Epoch != s.epoch
		s.rev, s.epoch = m.Rev, m.Epoch
		// A resync on a live connection (the room reloaded) resends here;
		// after a reconnect, run resends once the join is answered.
		resend := s.resync && newEpoch && s.online
		if s.resync && newEpoch {
			// Redis may have lost acknowledged edits: send again, with their
			// own ids, those not durable when the new epoch began.
			start := int64(0)
			if m.EpochStart != nil {
				start = *m.EpochStart
			}
			for _, a := range s.unsaved {
				if a.rev > start {
					s.pending[a.b.id] = a.b
				}
			}
			s.unsaved = nil
			// The old epoch's revs mean nothing in the new one: every
			// batch still to send is based on the snapshot.
			for _, b := range s.pending {
				b.base = m.Rev
			}
		}
		s.resync = false
		s.mu.Unlock()
		if resend {
			s.resend()
		}
	case "joined":
		s.mu.Lock()
		s.epoch = m.Epoch
		s.mu.Unlock()
	case "saved":
		s.mu.Lock()
		if m.Epoch == "" || m.Epoch != s.epoch {
			// A save counted in another epoch's revs (or across a new
			// epoch): nothing it says about our revs can be trusted.
			s.mu.Unlock()
			break
		}
		kept := s.unsaved[:0]
		for _, a := range s.unsaved {
			if a.rev > m.Rev {
				kept = append(kept, a)
			}
		}
		s.unsaved = kept
		s.mu.Unlock()
	case "error":
		r.countError(m.Code)
		ref := unquote(m.Ref)
		s.mu.Lock()
		b := s.pending[ref]
		s.mu.Unlock()
		if b == nil {
			break
		}
		if m.Code == "unavailable" && s.r.cfg.NoBatchIDs {
			s.answer(ref, 0, false, false) // outcome unknown, and no id to ask again with
			break
		}
		if m.Code == "unavailable" || m.Code == "rate_limited" {
			// Nothing was applied: send it again shortly (same id).
			time.AfterFunc(500*time.Millisecond, func() {
				s.mu.Lock()
				still, online, c, frame := s.pending[ref] != nil, s.online, s.conn, b.frame(s.campaign, true)
				s.mu.Unlock()
				if still && online && s.r.ctx.Err() == nil {
					c.writeText(frame)
				}
			})
			s.signal()
			break
		}
		s.answer(ref, 0, false, false)
	}
	return m.Type
}

// scanUpdate is scanTail with the id and user as strings.
func scanUpdate(data []byte) (rev int64, id, user string, ok bool) {
	rev, idB, userB, ok := scanTail(data)
	return rev, string(idB), string(userB), ok
}

// update follows the campaign's rev, recognises the session's own batches
// replayed after a reconnect, and times the fan-out of others' edits.
func (s *session) update(rev int64, id, user string, now time.Time) {
	r := s.r
	s.mu.Lock()
	if rev > s.rev {
		s.rev = rev
	}
	own := user == s.user && s.pending[id] != nil
	s.mu.Unlock()
	if own { // our batch, replayed after a reconnect: acknowledged
		s.answer(id, rev, false, true)
		return
	}
	if us := sentMicros([]byte(id)); r.measuring.Load() && us > 0 {
		r.fanout.Record(now.Sub(time.UnixMicro(us)))
		r.fanoutN.Add(1)
	}
}

// answer settles a pending batch: accepted (ok) or refused.
func (s *session) answer(id string, rev int64, duplicate, ok bool) {
	r := s.r
	s.mu.Lock()
	b := s.pending[id]
	if b == nil {
		s.mu.Unlock()
		return
	}
	delete(s.pending, id)
	if ok {
		if rev > s.rev && !duplicate {
			s.rev = rev
		}
		if r.cfg.Mode == Log {
			s.unsaved = append(s.unsaved, acked{b: b, rev: rev})
		}
	}
	s.mu.Unlock()
	if ok {
		r.accepted.Add(1)
		if r.measuring.Load() {
			r.ack.Record(time.Since(b.sent))
		}
		if r.cfg.OnAck != nil {
			r.cfg.OnAck(s.campaign, s.key, b.seq, rev)
		}
	}
	s.signal()
}

func (s *session) signal() {
	select {
	case s.answered <- struct{}{}:
	default:
	}
}
