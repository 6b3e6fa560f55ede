package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/load"
	"github.com/collab-dev/collab/internal/testenv"
)

// probe is a bare session on one node, joined, that times how long an edit
// waits for its answer.
type probe struct {
	conn *websocket.Conn
	id   string
	in   chan map[string]any
	n    int
}

func newProbe(t *testing.T, c *cluster, nd *node, id string) *probe {
	p := &probe{conn: dialRawTo(t, c, nd, id), id: id, in: make(chan map[string]any, 1024)}
	go func() {
		for {
			_, data, err := p.conn.Read(context.Background())
			if err != nil {
				close(p.in)
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				select {
				case p.in <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { p.conn.CloseNow() })
	return p
}

// edit sends an edit of the probe's own field and returns how long its
// answer (ack, error or refresh) took, and its type or code.
func (p *probe) edit(t *testing.T) (time.Duration, string) {
	p.n++
	ref := "probe" + strconv.Itoa(p.n)
	msg := fmt.Sprintf(`{"type":"edit","campaign":%q,"base":0,"ref":%q,"id":%q,"ops":[{"op":"add","path":"/probe","value":%d}]}`, p.id, ref, ref, p.n)
	start := time.Now()
	if err := p.conn.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-p.in:
			if !ok {
				t.Fatal("probe connection closed")
			}
			if m["ref"] == ref {
				what, _ := m["type"].(string)
				if code, ok := m["code"].(string); ok {
					what = code
				}
				return time.Since(start), what
			}
		case <-deadline:
			t.Fatalf("no answer to an edit in 20 s")
		}
	}
}

// 6. One node's link to Redis stalls (its commands run, their replies do
// not come back) in bursts of 1.5, 2.5 and 4 s under load, with and without
// batch ids: the node answers unavailable within a bounded time instead of
// hanging, /readyz says so during the long stall, and no edit is applied
// twice (client-library retries run the edit script again; it dedups every
// call). Without ids a client cannot resend an edit whose outcome is
// unknown, so only the acknowledged ones are checked, exactly once.
func TestNodeCutOffFromRedis(t *testing.T) {
	for _, noIDs := range []bool{false, true} {
		name := "with batch ids"
		if noIDs {
			name = "without batch ids"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 3)
			acks := load.NewAcks()
			cfg := c.loadConfig(acks)
			cfg.NoBatchIDs = noIDs
			r := startLoad(t, cfg)
			time.Sleep(2 * time.Second)
			cut := c.nodes[1]
			pr := newProbe(t, c, cut, r.Campaigns()[0])
			time.Sleep(300 * time.Millisecond)
			var slowest time.Duration
			answers := map[string]int{}
			unready := false
			for _, stall := range []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond, 4 * time.Second} {
				cut.redis.Hold()
				start := time.Now()
				took, what := pr.edit(t)
				answers[what]++
				slowest = max(slowest, took)
				for time.Since(start) < stall {
					if code, _ := c.get(cut, "/readyz", ""); code == 503 {
						unready = true
					}
					time.Sleep(200 * time.Millisecond)
				}
				cut.redis.Release()
				time.Sleep(time.Second)
			}
			time.Sleep(2 * time.Second)
			rep := r.Stop()
			v := c.check(r.Campaigns(), acks, 45*time.Second)
			mustHold(t, v, rep)
			if slowest > 3500*time.Millisecond {
				t.Fatalf("an edit on the stalled node waited %v for its answer", slowest)
			}
			if !unready {
				t.Fatalf("/readyz of the stalled node never said 503")
			}
			if answers["unavailable"] == 0 {
				t.Fatalf("no edit on the stalled node was answered unavailable: %v", answers)
			}
			report(t, "one node's Redis link stalled 1.5/2.5/4 s under load (%s): an edit there answered in at most %.2f s (%v), /readyz 503 during the stall; clients saw %d unavailable errors; edits acknowledged %d, found in SQL %d, lost %d, stored twice %d",
				name, slowest.Seconds(), answers, rep.Errors["unavailable"], v.Acked, v.Stored, v.Lost, v.Twice)
		})
	}
}

// 7. A node frozen (SIGSTOP) for 12 s, longer than the 10 s flush lease,
// while it holds leases mid-flush: others take its campaigns over, and when
// it wakes its stale flushes are refused by the store's fences.
func TestNodeFrozenPastItsLease(t *testing.T) {
	c := newCluster(t, 3)
	acks := load.NewAcks()
	r := startLoad(t, c.loadConfig(acks))
	time.Sleep(2 * time.Second)
	frozen := c.nodes[0]
	frozen.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(12 * time.Second)
	frozen.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(3 * time.Second)
	rep := r.Stop()
	v := c.check(r.Campaigns(), acks, 45*time.Second)
	mustHold(t, v, rep)
	report(t, "a node frozen 12 s (past the 10 s flush lease) under load: edits acknowledged %d, found in SQL %d, lost %d, stored twice %d; %d reconnects",
		v.Acked, v.Stored, v.Lost, v.Twice, rep.Reconnects)
}

// 8. The stale flush across a new epoch: one node's flushes stall between
// building the draft and writing it (the relay holds its UPDATE carrying the
// draft, as if the node paused just before sending it),
// Redis crashes losing its AOF's last second, a new epoch starts and
// acknowledges edits at revs the stalled flushes also cover; then the
// stalled node's commits go through. The store fences by epoch: they are
// refused, and every acknowledged edit is stored exactly once.
func TestStaleFlushAcrossNewEpoch(t *testing.T) {
	c := newCluster(t, 3, "COLLAB_FLUSH_INTERVAL=1s")
	acks := load.NewAcks()
	aof := c.redis.aofSampler(t)
	r := startLoad(t, c.loadConfig(acks))
	time.Sleep(2500 * time.Millisecond)
	stale := c.nodes[0]
	stale.pg.HoldRequests([]byte(`"log":{"`)) // only a draft save carries a whole log document
	for deadline := time.Now().Add(10 * time.Second); stale.pg.HeldRequests() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // until its timer starts a flush that stalls
	}
	time.Sleep(300 * time.Millisecond)
	for _, nd := range c.nodes {
		nd.redis.SetDown(true)
	}
	c.redis.kill()
	killed := time.Now()
	cut := aof.truncateTo(killed.Add(-time.Second))
	time.Sleep(300 * time.Millisecond)
	c.redis.start()
	for _, nd := range c.nodes {
		nd.redis.SetDown(false)
	}
	// The new epoch acknowledges edits; the stalled commits go through
	// before the other nodes' first flush of them (due after 1 s), so the
	// version check alone would not stop them.
	time.Sleep(700 * time.Millisecond)
	stale.pg.Release()
	time.Sleep(3 * time.Second)
	rep := r.Stop()
	v := c.check(r.Campaigns(), acks, 45*time.Second)
	raw, _ := os.ReadFile(stale.logf)
	fenced := strings.Count(string(raw), "stale flush refused by the epoch fence")
	mustHold(t, v, rep)
	if fenced == 0 {
		t.Fatalf("no stalled flush met the epoch fence (%d draft saves held): the test did not test", stale.pg.HeldRequests())
	}
	report(t, "flushes stalled before their commit across a Redis crash (AOF cut by %d bytes) and a new epoch: %d stale saves refused by the epoch fence; clients resent %d batches; edits acknowledged %d, found in SQL %d, lost %d, stored twice %d",
		cut, fenced, rep.Resent, v.Acked, v.Stored, v.Lost, v.Twice)
}

// sentinels is a Redis primary, a replica and three sentinels on loopback.
type sentinels struct {
	t                *testing.T
	primary, replica *exec.Cmd
	ports            []int // primary, replica, sentinels
	dir              string
}

func startSentinels(t *testing.T) *sentinels {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	s := &sentinels{t: t, dir: t.TempDir()}
	for i := 0; i < 5; i++ {
		s.ports = append(s.ports, freePort(t))
	}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	node := func(i int, extra ...string) *exec.Cmd {
		dir := filepath.Join(s.dir, strconv.Itoa(i))
		os.MkdirAll(dir, 0o755)
		args := append([]string{"--port", strconv.Itoa(s.ports[i]), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", s.logFile(i)}, extra...)
		return run(args...)
	}
	s.primary = node(0)
	s.replica = node(1, "--replicaof", "127.0.0.1", strconv.Itoa(s.ports[0]))
	for i := 2; i < 5; i++ {
		conf := filepath.Join(s.dir, fmt.Sprintf("sentinel%d.conf", i))
		os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\nlogfile %q\nsentinel monitor fault 127.0.0.1 %d 2\nsentinel down-after-milliseconds fault 1000\nsentinel failover-timeout fault 5000\nsentinel parallel-syncs fault 1\n",
			s.ports[i], s.logFile(i), s.ports[0])), 0o644)
		run(conf, "--sentinel")
	}
	// Wait for the replica to sync and the sentinels to see it.
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.ports[1])})
	defer rc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		info, _ := rc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never synced: %s\n%s", info, s.logs())
		}
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.ports[2])})
	defer sc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		reps, _ := sc.Replicas(context.Background(), "fault").Result()
		if len(reps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinels never saw the replica\n%s", s.logs())
		}
	}
	// The sentinels find one another through the primary: one killed
	// before they did never gets the majority a failover needs.
	for i := 2; i < 5; i++ {
		sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.ports[i])})
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			m, _ := sc.Master(context.Background(), "fault").Result()
			if n, _ := strconv.Atoi(m["num-other-sentinels"]); n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				t.Fatalf("sentinel %d never saw the two others\n%s", i, s.logs())
			}
		}
		sc.Close()
	}
	return s
}

func (s *sentinels) logFile(i int) string {
	return filepath.Join(s.dir, fmt.Sprintf("redis%d.log", i))
}

// logs is the end of every server's log, for a failure's message.
func (s *sentinels) logs() string {
	var b strings.Builder
	for i := range s.ports {
		raw, _ := os.ReadFile(s.logFile(i))
		if len(raw) > 2000 {
			raw = raw[len(raw)-2000:]
		}
		fmt.Fprintf(&b, "--- port %d (%s):\n%s\n", s.ports[i], []string{"primary", "replica", "sentinel", "sentinel", "sentinel"}[i], raw)
	}
	return b.String()
}

func (s *sentinels) url() string {
	return fmt.Sprintf("redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/0?master_name=fault", s.ports[2], s.ports[3], s.ports[4])
}

// 9. The Redis primary dies under load and Sentinel promotes the replica:
// the nodes follow the new primary, which starts a new epoch (another run
// id), and clients resend what the replica had not received.
func TestSentinelFailover(t *testing.T) {
	testenv.Redis(t)
	s := startSentinels(t)
	c := newCluster(t, 3, "COLLAB_REDIS_URL="+s.url(), "COLLAB_FLUSH_INTERVAL=2s")
	acks := load.NewAcks()
	r := startLoad(t, c.loadConfig(acks))
	time.Sleep(2500 * time.Millisecond)
	s.primary.Process.Kill()
	killed := time.Now()
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.ports[2])})
	defer sc.Close()
	var promoted time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		addr, _ := sc.GetMasterAddrByName(context.Background(), "fault").Result()
		if len(addr) == 2 && addr[1] == strconv.Itoa(s.ports[1]) {
			promoted = time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Sentinel never promoted the replica")
		}
	}
	time.Sleep(5 * time.Second)
	rep := r.Stop()
	v := c.check(r.Campaigns(), acks, 45*time.Second)
	mustHold(t, v, rep)
	report(t, "Redis primary killed under load, Sentinel promoted the replica in %.1f s: clients saw %d unavailable errors, %d reconnects, resent %d batches; edits acknowledged %d, found in SQL %d, lost %d, stored twice %d",
		promoted.Seconds(), rep.Errors["unavailable"], rep.Reconnects, rep.Resent, v.Acked, v.Stored, v.Lost, v.Twice)
}
