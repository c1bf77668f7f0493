package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is sysconf(_SC_CLK_TCK), the unit of utime and stime in
// /proc/<pid>/stat: 100 on every Linux architecture Go supports (USER_HZ), so
// the tool does not need cgo to ask.
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	Pid     int     `json:"pid"`
	At      int64   `json:"at_unix_ns"`
	CPU     float64 `json:"cpu_seconds"` // utime + stime
	RSS     uint64  `json:"rss_bytes"`   // VmRSS
	Threads int     `json:"threads"`
	FDs     int     `json:"fds"`
}

// readProc samples /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procSample, error) {
	s := procSample{Pid: pid, At: time.Now().UnixNano()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces, so
	// count fields after the last ')': state is field 3, utime 14, stime 15,
	// num_threads 20.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 18 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	threads, err3 := strconv.Atoi(f[20-3])
	if err1 != nil || err2 != nil || err3 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad utime/stime/threads", pid)
	}
	s.CPU = float64(utime+stime) / clockTicks
	s.Threads = threads
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, v)
			}
			s.RSS = kb << 10
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	return s, nil
}

// procDelta is what happened to a process over a scenario.
type procDelta struct {
	Pid        int     `json:"pid"`
	Seconds    float64 `json:"seconds"`
	CPU        float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	RSSBefore  uint64  `json:"rss_before_bytes"`
	RSSAfter   uint64  `json:"rss_after_bytes"`
	RSSDelta   int64   `json:"rss_delta_bytes"`
	FDsAfter   int     `json:"fds_after"`
	Threads    int     `json:"threads_after"`
}

func delta(a, b procSample) procDelta {
	d := procDelta{Pid: a.Pid, Seconds: float64(b.At-a.At) / 1e9, CPU: b.CPU - a.CPU,
		RSSBefore: a.RSS, RSSAfter: b.RSS, RSSDelta: int64(b.RSS) - int64(a.RSS), FDsAfter: b.FDs, Threads: b.Threads}
	if d.Seconds > 0 {
		d.CPUPercent = 100 * d.CPU / d.Seconds
	}
	return d
}

// cmdStat samples the given pids now and again after -duration (or on
// SIGINT/SIGTERM) and prints the deltas.
func cmdStat(args []string) error {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	pids := fs.String("pid", "", "comma-separated process ids")
	duration := fs.Duration("duration", 0, "interval between the two samples; 0 prints one sample")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench stat -pid P[,P2] [-duration D]: CPU seconds and RSS from /proc, as JSON; with -duration the deltas over it (SIGINT ends it early)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	list, err := parsePids(*pids)
	if err != nil {
		return err
	}
	before, err := readProcs(list)
	if err != nil {
		return err
	}
	if *duration <= 0 {
		return writeJSON(before)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(*duration):
	}
	after, err := readProcs(list)
	if err != nil {
		return err
	}
	out := make([]procDelta, len(list))
	for i := range list {
		out[i] = delta(before[i], after[i])
	}
	return writeJSON(out)
}

func parsePids(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no -pid given")
	}
	return out, nil
}

func readProcs(pids []int) ([]procSample, error) {
	out := make([]procSample, len(pids))
	for i, p := range pids {
		var err error
		if out[i], err = readProc(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// window measures a target's server and nats-server over one phase: start
// reads /proc before, finish after.
type window struct {
	server int // pid of the server under test; 0: not measured
	pids   []int
	before []procSample
}

func startWindow(c runConfig, t runTarget) (*window, error) {
	w := &window{server: t.pid}
	if t.pid > 0 {
		w.pids = append(w.pids, t.pid)
	}
	if c.natsPid > 0 && c.natsPid != t.pid {
		w.pids = append(w.pids, c.natsPid)
	}
	var err error
	w.before, err = readProcs(w.pids)
	return w, err
}

// finish returns the server's and nats-server's deltas (nil when not
// measured) and their CPU seconds together.
func (w *window) finish() (server, nats *procDelta, total float64, err error) {
	after, err := readProcs(w.pids)
	if err != nil {
		return nil, nil, 0, err
	}
	for i, pid := range w.pids {
		d := delta(w.before[i], after[i])
		total += d.CPU
		if pid == w.server {
			server = &d
		} else {
			nats = &d
		}
	}
	return server, nats, total, nil
}
