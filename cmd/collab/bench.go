package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/collab-dev/collab/internal/load"
)

// benchCmd is `collab bench`: load over the real protocol against any
// collab URL (see internal/load).
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collab bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls := fs.String("url", "http://localhost:8080", "collab node URLs, comma-separated; sessions spread over them and reconnect to the next")
	campaigns := fs.Int("campaigns", 10, "campaigns (created for the run)")
	writers := fs.Int("writers", 10, "writing sessions per campaign")
	watchers := fs.Int("watchers", 0, "watching sessions per campaign")
	rate := fs.Float64("rate", 0, "edits per second over all writers; 0: closed loop (each writer waits for its answer)")
	sessionRate := fs.Float64("session-rate", load.DefaultSessionRate, "each writer's edits per second at most, as the server's request limit (COLLAB_SESSION_RATE) allows; negative: unpaced")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure, after every session joined")
	warmup := fs.Duration("warmup", 0, "load this long before measuring (counters start after it)")
	cpuprofile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	hot := fs.Float64("hot", 0, "share of edits aimed at one shared field, 0 to 1 (forces conflicts)")
	mode := fs.String("mode", "fields", "fields (each writer its own field) or log (append-only, checkable)")
	workspace := fs.String("workspace", "bench", "workspace of the bench's users and campaigns")
	pid := fs.Int("pid", 0, "server process to watch for RSS and CPU; 0: found from a loopback URL's port")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dial := fs.Int("dial-concurrency", 64, "parallel connection attempts while connecting")
	secretFlag := fs.String("jwt-secret", getenv("COLLAB_JWT_SECRET"), "the server's secret (COLLAB_JWT_SECRET); empty: the data dir's development secret")
	dataDir := fs.String("data-dir", or(getenv("COLLAB_DATA_DIR"), "./collab-data"), "data dir holding the development secret (COLLAB_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hot < 0 || *hot > 1 || *campaigns <= 0 || *writers < 0 || *watchers < 0 || *writers+*watchers == 0 || *rate < 0 {
		return fmt.Errorf("bench: bad flags: need -campaigns > 0, -writers or -watchers > 0, 0 <= -hot <= 1, -rate >= 0")
	}
	if *mode != string(load.Fields) && *mode != string(load.Log) {
		return fmt.Errorf("bench: -mode must be fields or log, not %q", *mode)
	}
	secret := []byte(*secretFlag)
	if len(secret) == 0 {
		var err error
		if secret, err = existingDevSecret(*dataDir); err != nil {
			return fmt.Errorf("bench: no -jwt-secret and no development secret in %s: %w", *dataDir, err)
		}
	}
	cfg := load.Config{
		URLs: strings.Split(*urls, ","), Secret: secret, Workspace: *workspace,
		Campaigns: *campaigns, Writers: *writers, Watchers: *watchers, Rate: *rate, SessionRate: *sessionRate,
		Duration: *duration, Warmup: *warmup, Hot: *hot, Mode: load.Mode(*mode), DialConcurrency: *dial,
		Log: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) },
	}
	if *pid == 0 {
		*pid = load.LocalPID(cfg.URLs[0])
	}
	var stopWatch func() *load.Process
	if *pid > 0 {
		stopWatch = load.Watch(*pid)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("bench: -cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("bench: -cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	stopSelf := load.Watch(os.Getpid())
	rep, err := load.Run(ctx, cfg)
	self := stopSelf()
	if err != nil {
		if stopWatch != nil {
			stopWatch()
		}
		return fmt.Errorf("bench: %w", err)
	}
	if stopWatch != nil {
		rep.Server = stopWatch()
	}
	rep.Client = self
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, cfg, rep)
	return nil
}

func printReport(w io.Writer, cfg load.Config, r *load.Report) {
	loop := "closed loop"
	if cfg.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f edits/s", cfg.Rate)
	}
	fmt.Fprintf(w, "collab bench: %d campaigns × (%d writers + %d watchers), %s, hot %.0f%%, %s mode, %.1fs on %s\n\n",
		r.Campaigns, cfg.Writers, cfg.Watchers, loop, cfg.Hot*100, cfg.Mode, r.Seconds, strings.Join(cfg.URLs, ","))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ms := func(q load.Quantiles) string {
		if q.N == 0 {
			return "–"
		}
		return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", q.P50, q.P90, q.P99, q.Max, q.N)
	}
	fmt.Fprintf(tw, "sessions\t%d\t(joined in %.2fs)\n", r.Sessions, r.ConnectSeconds)
	fmt.Fprintf(tw, "edits sent\t%d\n", r.Sent)
	fmt.Fprintf(tw, "accepted\t%d\t%.1f/s\n", r.Accepted, r.AcceptedPerSec)
	fmt.Fprintf(tw, "conflicts\t%d\n", r.Conflicts)
	var errs []string
	for code, n := range r.Errors {
		errs = append(errs, fmt.Sprintf("%s: %d", code, n))
	}
	sort.Strings(errs)
	if len(errs) == 0 {
		errs = []string{"0"}
	}
	fmt.Fprintf(tw, "errors\t%s\n", strings.Join(errs, ", "))
	fmt.Fprintf(tw, "reconnects\t%d\n", r.Reconnects)
	fmt.Fprintf(tw, "ack latency\t%s\n", ms(r.AckMillis))
	fmt.Fprintf(tw, "fan-out latency\t%s\n", ms(r.FanoutMillis))
	if s := r.Server; s != nil {
		fmt.Fprintf(tw, "server pid\t%d\n", s.PID)
		fmt.Fprintf(tw, "server RSS\t%.1f MiB before connecting, %.1f peak, %.1f at end\n", s.RSSStartMiB, s.RSSPeakMiB, s.RSSEndMiB)
		if r.Sessions > 0 {
			fmt.Fprintf(tw, "RSS per session\t%.1f KiB (end minus start, over %d sessions)\n", (s.RSSEndMiB-s.RSSStartMiB)*1024/float64(r.Sessions), r.Sessions)
		}
		fmt.Fprintf(tw, "server CPU\t%.2f cores (connecting included)\n", s.CPUCores)
		if c := r.Client; c != nil {
			fmt.Fprintf(tw, "bench CPU\t%.2f cores (this load generator, on the same machine)\n", c.CPUCores)
		}
	} else {
		fmt.Fprintf(tw, "server\tnot local (or -pid not given): no RSS or CPU\n")
	}
	tw.Flush()
}
