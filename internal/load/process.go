package load

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process is a local server's resource use over a run.
type Process struct {
	PID         int     `json:"pid"`
	RSSStartMiB float64 `json:"rss_start_mib"`
	RSSPeakMiB  float64 `json:"rss_peak_mib"`
	RSSEndMiB   float64 `json:"rss_end_mib"`
	CPUCores    float64 `json:"cpu_cores"` // CPU seconds per wall second over the run
}

// Watch samples a process's RSS every 200 ms and its CPU time until stop is
// called. It works on Linux (/proc); elsewhere it returns nil.
func Watch(pid int) (stop func() *Process) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return func() *Process { return nil }
	}
	p := &Process{PID: pid, RSSStartMiB: rssMiB(pid)}
	cpu0, t0 := cpuSeconds(pid), time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	peak := p.RSSStartMiB
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				peak = max(peak, rssMiB(pid))
			}
		}
	}()
	return func() *Process {
		close(done)
		wg.Wait()
		p.RSSEndMiB = rssMiB(pid)
		p.RSSPeakMiB = max(peak, p.RSSEndMiB)
		if wall := time.Since(t0).Seconds(); wall > 0 {
			p.CPUCores = (cpuSeconds(pid) - cpu0) / wall
		}
		return p
	}
}

func rssMiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is utime+stime; the kernel counts them in ticks of 1/100 s
// on every Linux this runs on (USER_HZ).
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// LocalPID finds the process listening on a loopback URL's port, through
// /proc/net/tcp{,6} and the processes' open sockets. 0 when not found or
// not local.
func LocalPID(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if ip := net.ParseIP(host); !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return 0
	}
	want, _ := strconv.ParseUint(port, 10, 16)
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && p == want {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}
