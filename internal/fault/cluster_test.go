package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/load"
	"github.com/collab-dev/collab/internal/testenv"
)

// binary is the collab command, built once for all the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "collab-fault")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "collab")
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go env GOMOD:", err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", binary, "./cmd/collab")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build collab: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// report prints a test's figures to the test log and, when
// COLLAB_FAULT_REPORT names a file, appends them there (CI prints it).
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	if f := os.Getenv("COLLAB_FAULT_REPORT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(fh, "%s: %s\n", t.Name(), line)
			fh.Close()
		}
	}
}

// freePort returns a loopback port that was free when asked, for a server
// started later. It is drawn below the kernel's ephemeral range (32768 and
// up by default): a port from that range (":0") can be taken, between this
// call and the server's start, by an outgoing connection of any package
// testing in parallel, and a Redis that cannot bind exits and leaves its
// test waiting for nothing. A port here can only be taken by a listener;
// one handed out already is not handed out again.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("no free loopback port found in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// redisProc is a Redis server of the test's own, with the production
// durability settings: an append-only file fsynced every second.
type redisProc struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisProc {
	testenv.Redis(t) // the real-Redis switch: skip (or fail in CI) like every real-Redis suite
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (apt-get install redis-server): %v", err)
	}
	r := &redisProc{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisProc) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	for i := 0; ; i++ {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if i > 100 {
			r.t.Fatalf("redis did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// aofSampler records the size of the append-only file every 50 ms, so that
// a test can cut it back to what was on disk at a given time.
func (r *redisProc) aofSampler(t *testing.T) *aofSizes {
	a := &aofSizes{stop: make(chan struct{})}
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
			files, _ := filepath.Glob(filepath.Join(r.dir, "appendonlydir", "*.incr.aof"))
			if len(files) == 0 {
				continue
			}
			last := files[len(files)-1]
			if fi, err := os.Stat(last); err == nil {
				a.mu.Lock()
				a.file = last
				a.samples = append(a.samples, aofSample{time.Now(), fi.Size()})
				a.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { a.halt() })
	return a
}

type aofSample struct {
	at   time.Time
	size int64
}

type aofSizes struct {
	mu      sync.Mutex
	file    string
	samples []aofSample
	stop    chan struct{}
	once    sync.Once
}

func (a *aofSizes) halt() { a.once.Do(func() { close(a.stop) }) }

// truncateTo cuts the file back to its last size sampled at or before t and
// returns how many bytes went.
func (a *aofSizes) truncateTo(t time.Time) int64 {
	a.halt()
	a.mu.Lock()
	defer a.mu.Unlock()
	var size int64 = -1
	for _, s := range a.samples {
		if !s.at.After(t) {
			size = s.size
		}
	}
	fi, err := os.Stat(a.file)
	if size < 0 || err != nil {
		return 0
	}
	os.Truncate(a.file, size)
	return fi.Size() - size
}

// kill is a crash: SIGKILL, no final fsync.
func (r *redisProc) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// node is one collab process. It reaches Redis and PostgreSQL through
// relays of its own, so that a test can cut one node off.
type node struct {
	i      int
	addr   string
	cmd    *exec.Cmd
	logf   string
	exited chan error
	gone   chan struct{}  // closed once the process exited (exited keeps its error)
	redis  *testenv.Relay // nil when the test gave its own Redis URL
	pg     *testenv.Relay
	env    []string
}

type cluster struct {
	t         *testing.T
	secret    []byte
	workspace string
	env       []string
	redis     *redisProc
	nodes     []*node
}

// setRedisDown cuts every node off Redis (or lets them through again).
func (c *cluster) setRedisDown(down bool) {
	for _, nd := range c.nodes {
		nd.redis.SetDown(down)
	}
}

// setPGDown cuts every node off PostgreSQL (or lets them through again).
func (c *cluster) setPGDown(down bool) {
	for _, nd := range c.nodes {
		nd.pg.SetDown(down)
	}
}

// newCluster starts n collab processes sharing a Redis of the test's own and
// the real PostgreSQL (through a relay the test can cut). env entries
// override the nodes' defaults.
func newCluster(t *testing.T, n int, env ...string) *cluster {
	pgURL := testenv.Postgres(t)
	c := &cluster{t: t, secret: []byte("fault-test-secret-0123456789abcdef"), workspace: fmt.Sprintf("fault%d", time.Now().UnixNano())}
	ownRedis := slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "COLLAB_REDIS_URL=") })
	if !ownRedis {
		c.redis = startRedis(t)
	}
	c.env = []string{
		"COLLAB_JWT_SECRET=" + string(c.secret),
		"COLLAB_FLUSH_INTERVAL=500ms",
		"COLLAB_REDIS_PREFIX=" + c.workspace,
		"COLLAB_LOG_FORMAT=json",
		"COLLAB_LOG_LEVEL=info",
	}
	c.env = append(c.env, env...) // the last value of a variable wins
	for i := 0; i < n; i++ {
		nd := &node{i: i, addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), logf: filepath.Join(t.TempDir(), fmt.Sprintf("node%d.log", i))}
		u, err := url.Parse(pgURL)
		if err != nil {
			t.Fatal(err)
		}
		nd.pg = testenv.NewRelay(t, u.Host)
		u.Host = nd.pg.Addr()
		nd.env = []string{"COLLAB_DATABASE_URL=" + u.String()}
		if !ownRedis {
			nd.redis = testenv.NewRelay(t, c.redis.addr())
			nd.env = append(nd.env, "COLLAB_REDIS_URL=redis://"+nd.redis.Addr()+"/0")
		}
		c.nodes = append(c.nodes, nd)
	}
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.start(nd) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.cmd != nil && nd.cmd.ProcessState == nil {
				nd.cmd.Process.Kill()
				<-nd.exited
			}
			if t.Failed() {
				raw, _ := os.ReadFile(nd.logf)
				t.Logf("node %d log (tail):\n%s", nd.i, tail(string(raw), 3000))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start starts a node and waits until it is ready. The port was free when
// picked, but another package's test may bind it before the node does: a
// node's first start then moves to another port, and a restart (whose
// address clients hold) tries its own again for a while.
func (c *cluster) start(nd *node) {
	first := nd.cmd == nil
	for attempt := 0; ; attempt++ {
		if !c.startOnce(nd) || !nd.portTaken() || attempt >= 20 {
			return
		}
		if first {
			nd.addr = "127.0.0.1:" + strconv.Itoa(freePort(c.t))
		} else {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// portTaken reports whether the node exited because its port was in use.
func (nd *node) portTaken() bool {
	select {
	case <-nd.gone:
	default:
		return false
	}
	raw, _ := os.ReadFile(nd.logf)
	return strings.Contains(tail(string(raw), 500), "address already in use")
}

// startOnce starts the node's process; it reports false when the node is
// ready or cannot be started at all, true when it exited before ready.
func (c *cluster) startOnce(nd *node) (exitedEarly bool) {
	logf, err := os.OpenFile(nd.logf, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Error(err)
		return false
	}
	nd.cmd = exec.Command(binary, "serve")
	// A fresh slice: nodes start concurrently, and appending to c.env could
	// write into its spare capacity from two goroutines.
	nd.cmd.Env = slices.Concat(os.Environ(), nd.env, c.env, []string{"COLLAB_ADDR=" + nd.addr, "COLLAB_DATA_DIR=" + filepath.Dir(nd.logf)})
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		c.t.Error(err)
		return false
	}
	exited, gone := make(chan error, 1), make(chan struct{})
	nd.exited, nd.gone = exited, gone
	cmd := nd.cmd
	go func() { exited <- cmd.Wait(); close(gone); logf.Close() }()
	// Generous: CI runs this beside every other package under -race.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := c.get(nd, "/readyz", "")
		if code == 200 {
			return false
		}
		if nd.portTaken() {
			return true
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(nd.logf)
			c.t.Errorf("node %d not ready in 30 s (/readyz %d %s); its log (tail):\n%s", nd.i, code, body, tail(string(raw), 3000))
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) urls() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, "http://"+nd.addr)
	}
	return out
}

func (c *cluster) token() string {
	s, _ := auth.NewSigner(c.secret)
	tok, _ := s.Sign(auth.Claims{User: "checker", Workspace: c.workspace, Role: auth.Admin}, time.Hour)
	return tok
}

func (c *cluster) get(nd *node, path, token string) (int, []byte) {
	req, _ := http.NewRequest("GET", "http://"+nd.addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (c *cluster) alive() *node {
	for _, nd := range c.nodes {
		if nd.cmd != nil && nd.cmd.ProcessState == nil {
			select {
			case <-nd.exited:
			default:
				return nd
			}
		}
	}
	c.t.Fatal("no live node")
	return nil
}

// kill9 crashes a node: no shutdown, no final flush.
func (c *cluster) kill9(nd *node) {
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
}

// terminate asks a node to shut down gracefully and waits for it.
func (c *cluster) terminate(nd *node) (took time.Duration, err error) {
	start := time.Now()
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err = <-nd.exited:
	case <-time.After(40 * time.Second):
		err = fmt.Errorf("node %d did not stop in 40 s", nd.i)
	}
	return time.Since(start), err
}

// loadConfig is the standard fault-test load: log mode (every acked edit
// checkable), writers on every node.
func (c *cluster) loadConfig(acks *load.Acks) load.Config {
	return load.Config{
		URLs: c.urls(), Secret: c.secret, Workspace: c.workspace,
		Campaigns: 6, Writers: 3, Watchers: 1, Rate: 150, Mode: load.Log,
		OnAck: acks.Record, Log: c.t.Logf,
	}
}

// check reads every campaign's saved draft until every acknowledged edit is
// there (autosave catches up) or the deadline passes.
func (c *cluster) check(campaigns []string, acks *load.Acks, within time.Duration) load.Verdict {
	c.t.Helper()
	deadline := time.Now().Add(within)
	tok := c.token()
	for {
		var v load.Verdict
		for _, id := range campaigns {
			code, raw := c.get(c.alive(), "/v1/campaigns/"+id, tok)
			var body struct {
				Draft json.RawMessage `json:"draft"`
			}
			if code != 200 || json.Unmarshal(raw, &body) != nil {
				c.t.Fatalf("read campaign %s: %d %s", id, code, raw)
			}
			one, err := acks.Check(id, body.Draft)
			if err != nil {
				c.t.Fatal(err)
			}
			v = v.Add(one)
		}
		if v.Lost == 0 || time.Now().After(deadline) {
			return v
		}
		time.Sleep(250 * time.Millisecond)
	}
}
