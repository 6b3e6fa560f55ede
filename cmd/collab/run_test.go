package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The embedded default: no Redis, no database, nothing but a data dir.
func TestRunEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	env := map[string]string{"COLLAB_DATA_DIR": dir, "COLLAB_ADDR": addr, "COLLAB_LOG_FORMAT": "json"}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, &logs) }()
	base := "http://" + addr
	waitReady(t, base+"/healthz")
	for _, path := range []string{"/readyz", "/metrics", "/"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	out := logs.String()
	for _, want := range []string{"single-node default", "COLLAB_REDIS_URL", "COLLAB_DATABASE_URL", "#token="} {
		if !strings.Contains(out, want) {
			t.Errorf("startup log lacks %q:\n%s", want, out)
		}
	}
	// The token command signs with the same development secret.
	var tok bytes.Buffer
	if err := run(context.Background(), []string{"token", "-user", "u1", "-workspace", "w1", "-role", "editor", "-data-dir", dir}, func(string) string { return "" }, &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+"/v1/campaigns", strings.NewReader(`{"name":"Spring"}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create with a CLI token: %v %v", resp, err)
	}
	var created map[string]any
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful shutdown")
	}
	// The SQLite file survives a restart with the campaign in it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- run(ctx2, nil, func(k string) string { return env[k] }, io.Discard, io.Discard) }()
	waitReady(t, base+"/healthz")
	req, _ = http.NewRequest("GET", base+"/v1/campaigns/"+created["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.String()))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel2()
	<-done
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", url)
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // a substring naming the bad setting; "" for valid
	}{
		{"defaults", nil, nil, ""},
		{"flag wins over env", map[string]string{"COLLAB_ADDR": "nonsense"}, []string{"-addr", ":9090"}, ""},
		{"bad addr", map[string]string{"COLLAB_ADDR": "nonsense"}, nil, "COLLAB_ADDR"},
		{"bad flush interval", map[string]string{"COLLAB_FLUSH_INTERVAL": "soon"}, nil, "COLLAB_FLUSH_INTERVAL"},
		{"flush interval too short", nil, []string{"-flush-interval", "1ms"}, "COLLAB_FLUSH_INTERVAL"},
		{"bad redis url", map[string]string{"COLLAB_REDIS_URL": "http://x"}, nil, "COLLAB_REDIS_URL"},
		{"bad database url", map[string]string{"COLLAB_DATABASE_URL": "mysql://x"}, nil, "COLLAB_DATABASE_URL"},
		{"short secret", map[string]string{"COLLAB_JWT_SECRET": "short"}, nil, "COLLAB_JWT_SECRET"},
		{"bad origin", map[string]string{"COLLAB_ALLOWED_ORIGINS": "not-a-url"}, nil, "COLLAB_ALLOWED_ORIGINS"},
		{"bad log level", map[string]string{"COLLAB_LOG_LEVEL": "loud"}, nil, "COLLAB_LOG_LEVEL"},
		{"bad session rate", map[string]string{"COLLAB_SESSION_RATE": "fast"}, nil, "COLLAB_SESSION_RATE"},
		{"zero session rate", nil, []string{"-session-rate", "0"}, "COLLAB_SESSION_RATE"},
		{"bad pprof address", map[string]string{"COLLAB_PPROF_ADDR": "0.0.0.0:6060"}, nil, "COLLAB_PPROF_ADDR"},
		{"unknown flag", nil, []string{"-frobnicate"}, "frobnicate"},
	}
	// The development sign-in is reachable from this machine only unless an
	// address is given.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, "127.0.0.1:8080"},
		{map[string]string{"COLLAB_JWT_SECRET": "0123456789abcdef"}, nil, ":8080"},
		{map[string]string{"COLLAB_ADDR": ":9000"}, nil, ":9000"},
		{nil, []string{"-addr", "0.0.0.0:8080"}, "0.0.0.0:8080"},
	} {
		cfg, err := loadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil || cfg.Addr != tc.want {
			t.Errorf("env %v args %v: addr %q %v, want %q", tc.env, tc.args, cfg.Addr, err, tc.want)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %s, got %v", tc.want, err)
			}
		})
	}
}

func TestRunRefusesUnreachableBackends(t *testing.T) {
	env := map[string]string{"COLLAB_DATA_DIR": t.TempDir(), "COLLAB_ADDR": freeAddr(t), "COLLAB_REDIS_URL": "redis://127.0.0.1:1/0"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "COLLAB_REDIS_URL") {
		t.Fatalf("want an error naming COLLAB_REDIS_URL, got %v", err)
	}
}

func TestSeed(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"seed", "-workspace", "w9", "-profiles", "500", "-data-dir", dir}, func(string) string { return "" }, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "imported 500 profiles into workspace w9") {
		t.Fatalf("%v: %s", err, out.String())
	}
	if err := run(context.Background(), []string{"seed", "-profiles", "0", "-data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Fatal("seeded zero profiles")
	}
}

func TestRedisClientURLs(t *testing.T) {
	cases := []struct {
		url, kind string
		ok        bool
	}{
		{"redis://127.0.0.1:6379/2", "*redis.Client", true},
		{"redis-cluster://h1:7000,h2:7001,h3:7002", "*redis.ClusterClient", true},
		{"redis-sentinel://s1:26379,s2:26379/1?master_name=mymaster", "*redis.Client", true},
		{"redis-sentinel://s1:26379,s2:26379", "", false}, // no master name
		{"redis-cluster://h1:7000?bogus=1", "", false},
	}
	for _, c := range cases {
		cl, err := redisClient(c.url)
		if (err == nil) != c.ok {
			t.Fatalf("%s: err %v", c.url, err)
		}
		if err != nil {
			continue
		}
		if got := fmt.Sprintf("%T", cl); got != c.kind {
			t.Fatalf("%s: %s, want %s", c.url, got, c.kind)
		}
		cl.Close()
	}
}

// -h prints the settings and is not a failure; a bad flag is.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "-h"}, 0, "COLLAB_WEBHOOK_SAVED_WINDOW"},
		{[]string{"-h"}, 0, "COLLAB_ADDR"},
		{[]string{"serve", "-frobnicate"}, 1, "frobnicate"},
	} {
		var out strings.Builder
		err := run(context.Background(), tc.args, func(string) string { return "" }, &out, &out)
		if code := exitCode(err, &out); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d; output %q lacks %q", tc.args, code, tc.code, out.String(), tc.want)
		}
	}
}
