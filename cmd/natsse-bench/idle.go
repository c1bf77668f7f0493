package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// idleScenario is an S4/S5 row: connections that receive nothing, opened in
// steps (one client process per step, so that no process holds more sockets
// than its file limit allows), with the server's RSS read after each step.
type idleScenario struct {
	steps []int // clients opened per step; each step is its own client process
	paths string
}

var idleScenarios = map[string]idleScenario{
	"s4": {steps: []int{10000}, paths: "/events/bench"},
	"s5": {steps: []int{10000, 9000}, paths: "/events/bench"},
}

// idleStep is the server's state after one step.
type idleStep struct {
	Connected int     `json:"connected"` // in total, after this step
	Failed    int     `json:"failed"`
	RSS       uint64  `json:"rss_bytes"`
	FDs       int     `json:"fds"`
	Threads   int     `json:"threads"`
	CPU       float64 `json:"cpu_seconds"`
	// PerConn is (RSS now - RSS before any client) / connected.
	PerConn float64 `json:"rss_per_connection_bytes"`
	// PerConnStep is the RSS added by this step's connections over their number.
	PerConnStep float64 `json:"rss_per_connection_this_step_bytes"`
}

type idlePhase struct {
	Target    string     `json:"target"`
	URL       string     `json:"url"`
	Pid       int        `json:"pid"`
	RSSBefore uint64     `json:"rss_before_bytes"`
	FDsBefore int        `json:"fds_before"`
	Steps     []idleStep `json:"steps"`
	// RSSAfterClose is read settle after every client has gone.
	RSSAfterClose uint64 `json:"rss_after_close_bytes"`
	FDsAfterClose int    `json:"fds_after_close"`
}

type idleResult struct {
	Scenario string       `json:"scenario"`
	Settle   string       `json:"settle"`
	Phases   []*idlePhase `json:"phases"`
}

func runIdle(c runConfig, sc idleScenario, settle time.Duration) (*idleResult, error) {
	res := &idleResult{Scenario: c.name, Settle: settle.String()}
	for _, t := range c.targets {
		if t.pid <= 0 {
			return res, fmt.Errorf("%s: idle scenarios need the server's pid (-natsse-pid / -ceiling-pid)", t.name)
		}
		ph, err := runIdlePhase(c, sc, t, settle)
		if ph != nil {
			res.Phases = append(res.Phases, ph)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %v", t.name, err)
		}
		for _, s := range ph.Steps {
			fmt.Fprintf(os.Stderr, "run %s %s: %d connected (%d failed), RSS %.1f MiB (before %.1f MiB): %.2f KiB per connection, %.2f KiB per connection of this step\n",
				c.name, t.name, s.Connected, s.Failed, float64(s.RSS)/(1<<20), float64(ph.RSSBefore)/(1<<20), s.PerConn/1024, s.PerConnStep/1024)
		}
	}
	return res, nil
}

func runIdlePhase(c runConfig, sc idleScenario, t runTarget, settle time.Duration) (*idlePhase, error) {
	total := 0
	for _, n := range sc.steps {
		total += n
	}
	if c.sc.clients > 0 && c.sc.clients < total { // -clients scales the steps down (smoke tests)
		scaled := make([]int, len(sc.steps))
		for i, n := range sc.steps {
			scaled[i] = max(1, n*c.sc.clients/total)
		}
		sc.steps = scaled
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+30*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	before, err := readProc(t.pid)
	if err != nil {
		return nil, err
	}
	ph := &idlePhase{Target: t.name, URL: t.url, Pid: t.pid, RSSBefore: before.RSS, FDsBefore: before.FDs}
	var procs []*clientProc
	stopAll := func() {
		for _, cp := range procs {
			cp.stop()
			if c.outDir == "" {
				<-cp.exited
				os.Remove(cp.out) // only kept with -out
			}
		}
	}
	defer stopAll()
	stamp := strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	off, connected, failed := 0, 0, 0
	prevRSS := before.RSS
	for i, n := range sc.steps {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("natsse-bench-%s-%s-%s-%d.json", c.name, t.name, stamp, i))
		if c.outDir != "" {
			out = filepath.Join(c.outDir, fmt.Sprintf("%s-%s-%s-%d.json", c.name, t.name, stamp, i))
		}
		cp, err := startClients(ctx, self, out, []string{
			"-url", t.url, "-paths", sc.paths, "-n", strconv.Itoa(n), "-offset", strconv.Itoa(off),
			"-duration", (c.timeout + 20*time.Second).String(), "-progress", "0",
		})
		if err != nil {
			return ph, err
		}
		procs = append(procs, cp)
		off += n
		select {
		case <-cp.ready:
		case <-cp.exited:
			return ph, fmt.Errorf("client process exited before connecting: %v", cp.err)
		case <-ctx.Done():
			return ph, errors.New("clients did not connect in time")
		}
		conn := readyField(cp.readyLine, "connected")
		connected += conn
		failed += n - conn
		time.Sleep(settle)
		s, err := readProc(t.pid)
		if err != nil {
			return ph, err
		}
		st := idleStep{Connected: connected, Failed: failed, RSS: s.RSS, FDs: s.FDs, Threads: s.Threads, CPU: s.CPU}
		if connected > 0 {
			st.PerConn = float64(int64(s.RSS)-int64(before.RSS)) / float64(connected)
		}
		if conn > 0 {
			st.PerConnStep = float64(int64(s.RSS)-int64(prevRSS)) / float64(conn)
		}
		prevRSS = s.RSS
		ph.Steps = append(ph.Steps, st)
	}
	stopAll()
	time.Sleep(settle)
	if s, err := readProc(t.pid); err == nil {
		ph.RSSAfterClose, ph.FDsAfterClose = s.RSS, s.FDs
	}
	return ph, nil
}

// readyField reads key=N from a client process's READY line.
func readyField(line, key string) int {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
