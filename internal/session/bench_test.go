package session_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
	"github.com/collab-dev/collab/internal/session"
	"github.com/collab-dev/collab/internal/session/sessiontest"

	"github.com/coder/websocket"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/draft"
)

// Benchmarks of live editing over real WebSockets against real Redis (they
// skip without it: COLLAB_TEST_REDIS_URL). Each reports its figures with
// ReportMetric; run them with -benchtime=1x, the load runs for a fixed time.

func benchCluster(b *testing.B) *sessiontest.Cluster {
	return sessiontest.RealCluster(b, draft.Options{MaxLog: 10_000_000})
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wsClient is a minimal load client: one reader goroutine, writes from the
// caller's goroutine.
type wsClient struct {
	conn *websocket.Conn
}

func benchDial(b *testing.B, n *sessiontest.Node, token string) *wsClient {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.Srv.URL, "http"), &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol}, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadLimit(16 << 20)
	b.Cleanup(func() { conn.CloseNow() })
	return &wsClient{conn: conn}
}

func (c *wsClient) write(v any) error {
	data, _ := json.Marshal(v)
	return c.conn.Write(context.Background(), websocket.MessageText, data)
}

type frame struct {
	Type string `json:"type"`
	Rev  int64  `json:"rev"`
	Ref  int64  `json:"ref"`
	ID   string `json:"id"`
	By   struct {
		Session string `json:"session"`
	} `json:"by"`
}

// read returns the next frame; updates and presence pushes, the bulk of
// the traffic, are recognised by their first bytes and not decoded, so
// that the load generator spends its CPU on the wire, not on JSON.
func (c *wsClient) read() (frame, error) {
	_, data, err := c.conn.Read(context.Background())
	if err != nil {
		return frame{}, err
	}
	switch {
	case bytes.HasPrefix(data, updateHead):
		return frame{Type: "update", Rev: revOf(data)}, nil
	case bytes.HasPrefix(data, presenceHead) && bytes.Contains(data[:min(len(data), 120)], presenceField):
		return frame{Type: "presence"}, nil
	}
	var f frame
	json.Unmarshal(data, &f)
	return f, nil
}

var (
	updateHead    = []byte(`{"type":"update",`)
	presenceHead  = []byte(`{"campaign":`) // replies are encoded with sorted keys
	presenceField = []byte(`","editors":[`)
)

// revOf reads "rev":N from an update without decoding it.
func revOf(data []byte) int64 {
	i := bytes.Index(data, []byte(`"rev":`))
	if i < 0 {
		return 0
	}
	n := int64(0)
	for _, c := range data[i+6:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// idOf reads "id":"..." from an update without decoding it.
func idOf(data []byte) string {
	i := bytes.Index(data, []byte(`"id":"`))
	if i < 0 {
		return ""
	}
	rest := data[i+6:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// readUntil reads frames until one of type typ.
func (c *wsClient) readUntil(typ string) (frame, error) {
	for {
		f, err := c.read()
		if err != nil || f.Type == typ {
			return f, err
		}
	}
}

// runWriters runs closed-loop writers (each waits for its ack before its
// next edit) on campaigns for d, and reports acks/s and ack latency.
func runWriters(b *testing.B, campaigns, writersPer int, docFor func(i int) string, d time.Duration) {
	c := benchCluster(b)
	n := c.Node(session.Config{RatePerSec: 1e6, RateBurst: 1e6, QueueBytes: 64 << 20})
	var lat latencies
	var acks, conflicts atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	var stop time.Time // set when the load starts, after every writer joined
	for ci := 0; ci < campaigns; ci++ {
		id := c.Campaign("w1", docFor(ci))
		for wi := 0; wi < writersPer; wi++ {
			cl := benchDial(b, n, c.Token(fmt.Sprintf("u%d", wi), "w1", auth.Editor))
			if _, err := cl.readUntil("welcome"); err != nil {
				b.Fatal(err)
			}
			cl.write(map[string]any{"type": "join", "campaign": id})
			snap, err := cl.readUntil("snapshot")
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func(wi int, base int64) {
				defer wg.Done()
				acked := make(chan frame, 1)
				go func() { // drain updates from the other writers, hand acks over
					for {
						f, err := cl.read()
						if err != nil {
							if time.Now().Before(stop) {
								b.Logf("writer %d: %v", wi, err)
							}
							close(acked)
							return
						}
						if f.Type == "ack" || f.Type == "refresh" || f.Type == "error" {
							acked <- f
						}
					}
				}()
				<-start
				path := fmt.Sprintf("/w%d", wi)
				for seq := int64(0); time.Now().Before(stop); seq++ {
					t0 := time.Now()
					if err := cl.write(map[string]any{"type": "edit", "campaign": id, "base": base, "ref": seq,
						"ops": []map[string]any{{"op": "add", "path": path, "value": seq}}}); err != nil {
						b.Logf("writer %d: %v", wi, err)
						return
					}
					f, ok := <-acked
					if !ok {
						return
					}
					if f.Type == "ack" {
						base = f.Rev
						if time.Now().Before(stop.Add(-d)) {
							continue // warm-up
						}
						lat.add(time.Since(t0))
						acks.Add(1)
					} else {
						conflicts.Add(1)
					}
				}
			}(wi, int64(snap.Rev))
		}
	}
	runtime.GC()
	b.ResetTimer()
	stop = time.Now().Add(d + time.Second) // one second of warm-up
	close(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(acks.Load())/d.Seconds(), "acks/s")
	b.ReportMetric(ms(lat.pct(0.5)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
	b.ReportMetric(float64(conflicts.Load()), "conflicts")
}

// runOpenLoop has writers edit at a fixed aggregate rate (not waiting for
// acks) and reports the ack latency at that rate.
func runOpenLoop(b *testing.B, campaigns, writersPer int, perSec float64, d time.Duration) {
	c := benchCluster(b)
	n := c.Node(session.Config{RatePerSec: 1e6, RateBurst: 1e6, QueueBytes: 64 << 20})
	var lat latencies
	var acks atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	var stop time.Time
	interval := time.Duration(float64(time.Second) * float64(campaigns*writersPer) / perSec)
	for ci := 0; ci < campaigns; ci++ {
		id := c.Campaign("w1", smallDoc(ci))
		for wi := 0; wi < writersPer; wi++ {
			cl := benchDial(b, n, c.Token(fmt.Sprintf("u%d", wi), "w1", auth.Editor))
			cl.readUntil("welcome")
			cl.write(map[string]any{"type": "join", "campaign": id})
			snap, err := cl.readUntil("snapshot")
			if err != nil {
				b.Fatal(err)
			}
			var sent sync.Map
			var base atomic.Int64
			base.Store(snap.Rev)
			wg.Add(1)
			go func() {
				for {
					f, err := cl.read()
					if err != nil {
						return
					}
					if f.Type == "ack" {
						if t0, ok := sent.LoadAndDelete(f.Ref); ok {
							lat.add(time.Since(t0.(time.Time)))
							acks.Add(1)
						}
						base.Store(f.Rev)
					}
				}
			}()
			go func(wi int) {
				defer wg.Done()
				<-start
				// Spread the writers' ticks over the interval.
				time.Sleep(time.Duration(wi*campaigns+ci) * interval / time.Duration(campaigns*writersPer))
				t := time.NewTicker(interval)
				defer t.Stop()
				path := fmt.Sprintf("/w%d", wi)
				for seq := int64(0); time.Now().Before(stop); seq++ {
					<-t.C
					sent.Store(seq, time.Now())
					cl.write(map[string]any{"type": "edit", "campaign": id, "base": base.Load(), "ref": seq,
						"ops": []map[string]any{{"op": "add", "path": path, "value": seq}}})
				}
			}(wi)
		}
	}
	time.Sleep(2 * time.Second)
	b.ResetTimer()
	stop = time.Now().Add(d)
	close(start)
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	b.StopTimer()
	b.ReportMetric(float64(acks.Load())/d.Seconds(), "acks/s")
	b.ReportMetric(ms(lat.pct(0.5)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
}

func BenchmarkEdit_100Campaigns_10Writers_5000PerSec(b *testing.B) {
	runOpenLoop(b, 100, 10, 5000, 5*time.Second)
}

func smallDoc(int) string { return `{"name":"bench"}` }

func BenchmarkEdit_1Campaign_400Writers(b *testing.B) {
	runWriters(b, 1, 400, smallDoc, 5*time.Second)
}

func BenchmarkEdit_100Campaigns_10Writers(b *testing.B) {
	runWriters(b, 100, 10, smallDoc, 5*time.Second)
}

func BenchmarkEdit_1Writer_1KiBDoc(b *testing.B) {
	runWriters(b, 1, 1, func(int) string { return padDoc(1 << 10) }, 3*time.Second)
}

func BenchmarkEdit_1Writer_1MiBDoc(b *testing.B) {
	runWriters(b, 1, 1, func(int) string { return padDoc(1<<20 - 1024) }, 3*time.Second)
}

// padDoc is a document of about size bytes spread over many fields, as a
// large campaign would be.
func padDoc(size int) string {
	var sb strings.Builder
	sb.WriteString(`{"name":"bench","fields":{`)
	for i := 0; sb.Len() < size-100; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"f%d":{"label":"field %d","text":"%s"}`, i, i, strings.Repeat("t", 200))
	}
	sb.WriteString(`}}`)
	return sb.String()
}

// runFanout has one writer edit at rate for d while watchers receive; it
// reports the send-to-receive latency over every delivery.
func runFanout(b *testing.B, watchers int, rate int, d time.Duration) {
	c := benchCluster(b)
	n := c.Node(session.Config{RatePerSec: 1e6, RateBurst: 1e6})
	id := c.Campaign("w1", smallDoc(0))
	var lat latencies
	var sent sync.Map // seq -> time
	var wg sync.WaitGroup
	var received atomic.Int64
	for i := 0; i < watchers; i++ {
		cl := benchDial(b, n, c.Token(fmt.Sprintf("v%d", i), "w1", auth.Viewer))
		cl.readUntil("welcome")
		cl.write(map[string]any{"type": "join", "campaign": id})
		if _, err := cl.readUntil("snapshot"); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := cl.conn.Read(context.Background())
				if err != nil {
					return
				}
				now := time.Now()
				if !bytes.HasPrefix(data, updateHead) {
					continue
				}
				if t0, ok := sent.Load(idOf(data)); ok {
					lat.add(now.Sub(t0.(time.Time)))
					received.Add(1)
				}
			}
		}()
	}
	w := benchDial(b, n, c.Token("writer", "w1", auth.Editor))
	w.readUntil("welcome")
	w.write(map[string]any{"type": "join", "campaign": id})
	snap, _ := w.readUntil("snapshot")
	base := snap.Rev
	time.Sleep(2 * time.Second) // let the join storm's presence pushes drain
	b.ResetTimer()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	end := time.Now().Add(d)
	edits := 0
	for time.Now().Before(end) {
		<-tick.C
		bid := fmt.Sprint("b", edits)
		sent.Store(bid, time.Now())
		w.write(map[string]any{"type": "edit", "campaign": id, "base": base, "id": bid, "ops": []map[string]any{{"op": "replace", "path": "/name", "value": bid}}})
		f, err := w.readUntil("ack")
		if err != nil {
			b.Fatal(err)
		}
		base = f.Rev
		edits++
	}
	tick.Stop()
	time.Sleep(500 * time.Millisecond)
	b.StopTimer()
	want := int64(edits * watchers)
	b.ReportMetric(ms(lat.pct(0.5)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
	b.ReportMetric(ms(lat.pct(1)), "max-ms")
	b.ReportMetric(float64(want-received.Load()), "missing")
}

func BenchmarkFanout_100Watchers(b *testing.B)  { runFanout(b, 100, 20, 5*time.Second) }
func BenchmarkFanout_1000Watchers(b *testing.B) { runFanout(b, 1000, 20, 5*time.Second) }

// rawSession opens a WebSocket with a bare TCP connection and no goroutine,
// so that in-process memory growth is the server's side alone.
func rawSession(b testing.TB, addr, token, joinFrame string) net.Conn {
	conn, _ := rawSessionReader(b, addr, token, joinFrame)
	return conn
}

// rawSessionReader is rawSession with the reader that read the upgrade's
// answer, which may hold the first frames.
func rawSessionReader(b testing.TB, addr, token, joinFrame string) (net.Conn, *bufio.Reader) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n"+
		"Authorization: Bearer %s\r\n\r\n", addr, protocol.Subprotocol, token)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		b.Fatalf("upgrade: %q %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if joinFrame != "" {
		conn.Write(maskedFrame([]byte(joinFrame)))
	}
	return conn, br
}

func maskedFrame(payload []byte) []byte {
	out := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	default:
		out = append(out, 0x80|126, 0, 0)
		binary.BigEndian.PutUint16(out[2:], uint16(n))
	}
	mask := []byte{1, 2, 3, 4}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

// memory is the process's memory as an idle server has it: each GC halves
// the stacks of parked goroutines that use little of theirs (stacks grown
// while handling a join shrink back), so several run first.
type memory struct{ heap, stacks, rss uint64 }

func measureMemory() memory {
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{heap: m.HeapInuse, stacks: m.StackInuse, rss: rssBytes()}
}

// rssBytes is the resident set of this process, from /proc (0 elsewhere).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// BenchmarkIdleSession_Memory compares, in one run, the server-side memory
// of an idle collab session (authenticated and joined to a campaign) with a
// plain coder/websocket connection whose handler only reads.
func BenchmarkIdleSession_Memory(b *testing.B) {
	const sessions = 2000
	c := benchCluster(b)
	n := c.Node(session.Config{})
	token := c.Token("idle", "w1", auth.Viewer)
	addr := strings.TrimPrefix(n.Srv.URL, "http://")

	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}, InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				return
			}
		}
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	psrv := &http.Server{Handler: plain}
	go psrv.Serve(ln)
	defer psrv.Close()

	// measure returns heap+stacks, stacks alone and RSS per session, in KiB.
	measure := func(addr string, join func(i int) string) (all, stacks, rss float64) {
		before := measureMemory()
		conns := make([]net.Conn, 0, sessions)
		for i := 0; i < sessions; i++ {
			conns = append(conns, rawSession(b, addr, token, join(i)))
		}
		time.Sleep(2 * time.Second) // let every session settle (joins, presence) and park (IdleAfter)
		after := measureMemory()
		if f := os.Getenv("COLLAB_BENCH_HEAPPROFILE"); f != "" && join(0) != "" {
			out, _ := os.Create(f)
			pprof.Lookup("heap").WriteTo(out, 0)
			g, _ := os.Create(f + ".goroutines")
			pprof.Lookup("goroutine").WriteTo(g, 1)
			g.Close()
			out.Close()
			b.Logf("goroutines: %d", runtime.NumGoroutine())
		}
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(time.Second)
		per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / sessions / 1024 }
		return per(after.heap+after.stacks, before.heap+before.stacks), per(after.stacks, before.stacks), per(after.rss, before.rss)
	}
	b.ResetTimer()
	plainKiB, plainStacks, _ := measure(ln.Addr().String(), func(int) string { return "" })
	idleKiB, idleStacks, _ := measure(addr, func(int) string { return "" })
	// Joined: ten sessions per campaign, as teams are.
	perRoom := 10
	if v, _ := strconv.Atoi(os.Getenv("XPERROOM")); v > 0 {
		perRoom = v
	}
	ids := make([]string, sessions/perRoom)
	for i := range ids {
		ids[i] = c.Campaign("w1", smallDoc(0))
	}
	joinedKiB, joinedStacks, joinedRSS := measure(addr, func(i int) string { return `{"type":"join","campaign":"` + ids[i/perRoom] + `"}` })
	b.StopTimer()
	b.ReportMetric(plainKiB, "plain-KiB/conn")
	b.ReportMetric(plainStacks, "plain-stack-KiB/conn")
	b.ReportMetric(idleKiB, "collab-KiB/session")
	b.ReportMetric(idleStacks, "collab-stack-KiB/session")
	b.ReportMetric(joinedKiB, "joined-KiB/session")
	b.ReportMetric(joinedStacks, "joined-stack-KiB/session")
	// RSS grows with what the process ever touched (the client side of the
	// test's connections too): an upper bound, not the server's figure.
	b.ReportMetric(joinedRSS, "joined-RSS-KiB/session")
	b.ReportMetric(idleKiB/plainKiB, "ratio")
}
