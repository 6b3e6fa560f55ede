package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/load"
)

func startEmbedded(t *testing.T) *server {
	t.Helper()
	var logs syncBuffer
	cfg := &config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), FlushInterval: 200 * time.Millisecond, RedisPrefix: "collab", LogLevel: "warn", LogFormat: "json"}
	srv, err := start(context.Background(), cfg, newLogger(cfg, &logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.shutdown(10 * time.Second) })
	return srv
}

// collab bench against a real server: its JSON report adds up.
func TestBenchCommand(t *testing.T) {
	srv := startEmbedded(t)
	var out, errOut bytes.Buffer
	args := []string{"bench", "-url", "http://" + srv.addr, "-campaigns", "2", "-writers", "3", "-watchers", "2",
		"-duration", "1s", "-rate", "300", "-hot", "0.5", "-json", "-data-dir", srv.dataDir()}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	var rep load.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if rep.Sessions != 10 || rep.Writers != 6 || rep.Watchers != 4 || rep.Accepted == 0 || rep.AckMillis.N != rep.Accepted {
		t.Fatalf("report: %+v", rep)
	}
	// Every accepted edit fans out to the 4 other sessions of its campaign.
	if rep.FanoutSamples < rep.Accepted*4 || rep.FanoutMillis.P50 <= 0 || rep.AckMillis.P99 < rep.AckMillis.P50 {
		t.Fatalf("fan-out: %d samples for %d edits; %+v", rep.FanoutSamples, rep.Accepted, rep)
	}
	if rep.Conflicts == 0 {
		t.Fatalf("half the edits on one field and no conflict: %+v", rep)
	}
	if len(rep.Errors) != 0 || rep.Server == nil || rep.Server.RSSPeakMiB <= 0 {
		t.Fatalf("errors or no server stats: %+v %+v", rep.Errors, rep.Server)
	}
	// The human table too.
	out.Reset()
	args = []string{"bench", "-url", "http://" + srv.addr, "-campaigns", "1", "-writers", "2", "-duration", "300ms",
		"-mode", "log", "-data-dir", srv.dataDir()}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"accepted", "ack latency", "fan-out latency", "server RSS", "log mode"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	for _, bad := range [][]string{{"bench", "-hot", "2"}, {"bench", "-mode", "x"}, {"bench", "-writers", "0", "-watchers", "0"}} {
		if err := run(context.Background(), bad, func(string) string { return "" }, &out, &errOut); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

// Log mode: every acknowledged edit ends up in the durable store exactly once.
func TestLoadLogModeIsExactlyOnce(t *testing.T) {
	srv := startEmbedded(t)
	acks := load.NewAcks()
	secret, _ := devSecret(srv.dataDir())
	cfg := load.Config{URLs: []string{"http://" + srv.addr}, Secret: secret, Workspace: "w", Campaigns: 2, Writers: 3,
		Duration: time.Second, Mode: load.Log, Rate: 300, OnAck: acks.Record}
	r, err := load.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Duration)
	rep := r.Stop()
	if rep.Accepted == 0 {
		t.Fatalf("nothing accepted: %+v", rep)
	}
	// Autosave catches up, then every acked sequence number is stored once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v load.Verdict
		for _, id := range r.Campaigns() {
			c, err := srv.store.Campaign(context.Background(), "w", id)
			if err != nil {
				t.Fatal(err)
			}
			one, err := acks.Check(id, c.Draft)
			if err != nil {
				t.Fatal(err)
			}
			v = v.Add(one)
		}
		if v.Twice > 0 {
			t.Fatalf("%d edits stored twice", v.Twice)
		}
		if v.Lost == 0 {
			t.Logf("%d acknowledged edits, all stored once", v.Acked)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged edits not in the store", v.Lost, v.Acked)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
