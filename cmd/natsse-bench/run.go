package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenario is one row of the table that "run" can drive: the same
// clients and the same publish plan against natsse and then the ceiling.
type scenario struct {
	clients int
	paths   string
	count   uint64
	rate    float64
	size    int
	users   int    // 0: one subject
	subject string // when users == 0
	// slowEvery > 0: every slowEvery-th client (in a client process of their
	// own) reads at most slowRate bytes/s through a slowRcvBuf socket buffer
	// and reconnects with Last-Event-ID when cut off, as EventSource does.
	slowEvery, slowRate, slowRcvBuf int
	// streams > 1 (run -streams N): the users spread over N streams S0..S<N-1>
	// on events0.> .. events<N-1>.>, each client on its user's stream (paths
	// /events/... become /events{s}/...), one publisher round-robin over all
	// users; see plan.Streams. The totals stay the scenario's.
	streams int
}

var scenarios = map[string]scenario{
	"s1": {clients: 1000, paths: "/events/bench", count: 2000, size: 100, subject: "events.bench"},
	"s2": {clients: 10000, paths: "/events/bench", count: 200, rate: 50, size: 100, subject: "events.bench"},
	"s3": {clients: 10000, paths: "/events/users/{i}", count: 20000, rate: 2000, size: 100, users: 10000},
	// S7: S2 with every tenth client reading at a tenth of the offered
	// rate (50 events/s of ~120-byte frames = 6,000 B/s; slow: 600 B/s).
	"s7": {clients: 10000, paths: "/events/bench", count: 200, rate: 50, size: 100, subject: "events.bench", slowEvery: 10, slowRate: 600, slowRcvBuf: 4096},
	// S8, re-specified (BENCHMARKS.md): 98% of the clients on their own
	// events.users.<i>, 1% on events.users.*, 1% on events.>; 4,000 events
	// round-robin over 10,000 users at 200/s: ~44,000 deliveries/s offered,
	// a load this machine carries with headroom, as a p99 target needs,
	// instead of the 10M/s the text implies.
	"s8": {clients: 10000, paths: s8Paths, count: 4000, rate: 200, size: 100, users: 10000},
}

// s8Paths assigns 98 of every 100 clients their own user subject, one
// events.users.* and one events.>.
var s8Paths = strings.Repeat("/events/users/{i},", 98) + "/events/users/*,/events/%3E"

// streamPaths rewrites a scenario's paths for a plan with several streams:
// /events/users/{i} becomes /events{s}/users/{i}, user i's subject in its
// stream, and /events/users/* and /events/%3E the same patterns within the
// stream of the client's index.
func streamPaths(paths string) string {
	return strings.ReplaceAll(paths, "/events/", "/events{s}/")
}

// runConfig holds the flags of "natsse-bench run".
type runConfig struct {
	sc             scenario
	name           string
	natsURL        string
	targets        []runTarget
	natsPid        int
	perProcess     int
	timeout        time.Duration
	outDir         string
	stream         string
	streams        int           // > 1: the scenario over streams S0..S<streams-1> (scenario.streams)
	idleWait       time.Duration // with streams: wait this long at most for natsse's consumers to go after the last phase
	profileDir     string
	profileSeconds int
}

type runTarget struct {
	name  string // natsse or ceiling
	url   string
	pid   int
	pprof string // base URL of its /debug/pprof, for -profile
}

// phaseResult is one target's measurement.
type phaseResult struct {
	Target       string         `json:"target"`
	URL          string         `json:"url"`
	Clients      *summary       `json:"clients"`
	Slow         *summary       `json:"slow_clients,omitempty"` // S7: the slow readers, apart from Clients
	Publish      *publishResult `json:"publish"`
	Server       *procDelta     `json:"server,omitempty"`
	NATS         *procDelta     `json:"nats,omitempty"`
	ClientCPU    float64        `json:"client_cpu_seconds"` // of the client processes, whole lifetime
	PerServerCPU float64        `json:"deliveries_per_server_cpu_second"`
	PerTotalCPU  float64        `json:"deliveries_per_server_and_nats_cpu_second,omitempty"`
	// MaxConsumers is the most consumers the stream had in any sample taken
	// while publishing and receiving (-1: not sampled).
	MaxConsumers    int `json:"stream_max_consumers"`
	ConsumerSamples int `json:"stream_consumer_samples"`
	// With several streams: each stream's consumers before the clients
	// connected, the most it had in any sample, and natsse's
	// natsse_upstream_consuming{stream} when every client had everything.
	ConsumersBefore   map[string]int     `json:"consumers_before,omitempty"`
	MaxConsumersEach  map[string]int     `json:"max_consumers_by_stream,omitempty"`
	UpstreamConsuming map[string]float64 `json:"natsse_upstream_consuming,omitempty"`
}

// runResult is what "run" prints.
type runResult struct {
	Scenario string         `json:"scenario"`
	Phases   []*phaseResult `json:"phases"`
	// Ratio is natsse's deliveries per server CPU-second over the ceiling's.
	Ratio      float64 `json:"ratio_to_ceiling,omitempty"`
	RatioTotal float64 `json:"ratio_to_ceiling_with_nats,omitempty"`
	// With several streams: each stream's consumers after the last phase,
	// ConsumersAfterSeconds after natsse's phase ended (its client processes
	// had everything, lingered and exited, closing their streams): the first
	// reading with none on any stream within -idle-wait, else the last one
	// (natsse deletes an upstream consumer NATSSE_UPSTREAM_IDLE after its
	// last reader on the replica left).
	Streams               int            `json:"streams,omitempty"`
	ConsumersAfter        map[string]int `json:"consumers_after,omitempty"`
	ConsumersAfterSeconds float64        `json:"consumers_after_seconds,omitempty"`
	// natsse_upstream_consuming{stream} at that last reading.
	UpstreamConsumingAfter map[string]float64 `json:"natsse_upstream_consuming_after,omitempty"`
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c runConfig
	fs.StringVar(&c.name, "scenario", "s1", "s1, s2, s3, s7, s8 (events), s4, s5 (idle connections, RSS) or s6 (resume storm); see BENCHMARKS.md")
	fs.StringVar(&c.natsURL, "nats", "nats://127.0.0.1:4222", "NATS URL both servers use; the publisher publishes here")
	natsseURL := fs.String("url", "http://127.0.0.1:8080", "natsse base URL (empty: skip natsse)")
	ceilingURL := fs.String("ceiling-url", "http://127.0.0.1:8090", "ceiling server base URL (empty: skip the ceiling)")
	natssePid := fs.Int("natsse-pid", 0, "natsse's pid, for its CPU seconds and RSS")
	ceilingPid := fs.Int("ceiling-pid", 0, "the ceiling server's pid")
	fs.IntVar(&c.natsPid, "nats-pid", 0, "nats-server's pid (connected mode), reported beside the servers")
	clients := fs.Int("clients", 0, "override the scenario's number of clients (smoke tests)")
	count := fs.Uint64("count", 0, "override the scenario's number of events")
	fs.IntVar(&c.perProcess, "per-process", 10000, "clients per client process (a process can hold ~19,000 sockets)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Minute, "limit per phase: connecting, publishing and receiving")
	fs.StringVar(&c.outDir, "out", "", "directory for the raw JSON of every client process and phase")
	settle := fs.Duration("settle", 5*time.Second, "idle scenarios: wait this long after each step before reading RSS")
	natssePprof := fs.String("natsse-pprof", "", "natsse's pprof base URL (NATSSE_PPROF_ADDR), for -profile")
	ceilingPprof := fs.String("ceiling-pprof", "", "the ceiling's pprof base URL (ceiling -pprof), for -profile")
	fs.StringVar(&c.profileDir, "profile", "", "directory for a CPU profile of each server while it delivers (needs -natsse-pprof / -ceiling-pprof)")
	fs.IntVar(&c.profileSeconds, "profile-seconds", 0, "length of each profile (0: the expected publish time + 2 s)")
	fs.StringVar(&c.stream, "stream", "EVENTS", "JetStream stream whose consumer count is sampled during publishing (empty: off)")
	fs.DurationVar(&c.idleWait, "idle-wait", 0, "with -streams: after the last phase, wait up to this long for every stream to have no consumer (natsse's last readers gone), reading every second")
	fs.IntVar(&c.streams, "streams", 0, "event scenarios with users (s3, s8): spread the users, clients and events over this many streams S0..S<n-1> on events0.> .. events<n-1>.>, which must exist (natsse-bench streams -n N) and be served by natsse (NATSSE_STREAM=S0,S1,...); -stream is then ignored")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench run -scenario s1 [flags]: the same clients and publish plan against natsse, then the ceiling;\nprints deliveries per server CPU-second and natsse's ratio to the ceiling as JSON.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	idle, isIdle := idleScenarios[c.name]
	sc, ok := scenarios[c.name]
	if !ok && !isIdle && c.name != "s6" {
		return fmt.Errorf("unknown scenario %q", c.name)
	}
	if *clients > 0 {
		sc.clients = *clients
	}
	if *count > 0 {
		sc.count = *count
	}
	if c.streams > 1 {
		if !ok || sc.users == 0 || sc.slowEvery > 0 {
			return fmt.Errorf("-streams: only for the event scenarios with users (s3, s8)")
		}
		sc.streams = c.streams
		sc.paths = streamPaths(sc.paths)
		c.name += "x" + strconv.Itoa(c.streams)
	}
	c.sc = sc
	if *natsseURL != "" {
		c.targets = append(c.targets, runTarget{"natsse", *natsseURL, *natssePid, *natssePprof})
	}
	if *ceilingURL != "" {
		c.targets = append(c.targets, runTarget{"ceiling", *ceilingURL, *ceilingPid, *ceilingPprof})
	}
	for _, d := range []string{c.outDir, c.profileDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	if c.name == "s6" {
		res, err := runStorm(c)
		if res != nil {
			if werr := writeJSON(res); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	if isIdle {
		res, err := runIdle(c, idle, *settle)
		if res != nil {
			if werr := writeJSON(res); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	res, err := runScenario(c)
	if res != nil {
		if werr := writeJSON(res); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// eachTarget runs one phase per target (natsse, then the ceiling) under one
// run id stamp and stops at the first phase that fails; done reports each.
func eachTarget[P any](c runConfig, phase func(runConfig, runTarget, string) (*P, error), done func(runTarget, *P)) ([]*P, error) {
	stamp := strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	var phases []*P
	for _, t := range c.targets {
		ph, err := phase(c, t, c.name+"-"+t.name+"-"+stamp)
		if ph != nil {
			phases = append(phases, ph)
		}
		if err != nil {
			return phases, fmt.Errorf("%s: %v", t.name, err)
		}
		done(t, ph)
	}
	return phases, nil
}

func runScenario(c runConfig) (*runResult, error) {
	res := &runResult{Scenario: c.name}
	if c.sc.streams > 1 {
		res.Streams = c.sc.streams
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		before := consumerCounts(ctx, c.natsURL, c.watched())
		cancel()
		for name, n := range before {
			if n < 0 {
				return res, fmt.Errorf("stream %s: not found on %s (create the streams with: natsse-bench streams -nats %s -n %d)", name, c.natsURL, c.natsURL, c.sc.streams)
			}
		}
	}
	var natsseDone time.Time
	natsseURL := ""
	for _, t := range c.targets {
		if t.name == "natsse" {
			natsseURL = t.url
		}
	}
	var err error
	res.Phases, err = eachTarget(c, runPhase, func(t runTarget, ph *phaseResult) {
		fmt.Fprintf(os.Stderr, "run %s %s: %d clients, received %d/%d, lost %d dup %d ooo %d, p99 %.2f ms, server CPU %.3f s, %.0f deliveries/CPU-s\n",
			c.name, t.name, ph.Clients.Connected, ph.Clients.Received, ph.Clients.Expected, ph.Clients.Lost,
			ph.Clients.Duplicates, ph.Clients.OutOfOrder, ph.Clients.Latency.P99, cpuOf(ph.Server), ph.PerServerCPU)
		for _, k := range sortedKeys(ph.Clients.ByStream) {
			st := ph.Clients.ByStream[k]
			fmt.Fprintf(os.Stderr, "run %s %s stream %s: %d clients, received %d/%d, lost %d dup %d ooo %d, id regressions %d, p99 %.2f ms, consumers before %d, at most %d, natsse_upstream_consuming %v\n",
				c.name, t.name, k, st.Connected, st.Received, st.Expected, st.Lost, st.Duplicates, st.OutOfOrder, st.IDRegressions,
				st.Latency.P99, ph.ConsumersBefore[k], ph.MaxConsumersEach[k], ph.UpstreamConsuming[k])
		}
		if t.name == "natsse" {
			natsseDone = time.Now()
		}
	})
	if c.sc.streams > 1 && err == nil {
		deadline := time.Now().Add(c.idleWait)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res.ConsumersAfter = consumerCounts(ctx, c.natsURL, c.watched())
			cancel()
			if natsseURL != "" {
				res.UpstreamConsumingAfter, _ = scrapeGauge(context.Background(), natsseURL+"/metrics", "natsse_upstream_consuming")
			}
			if !natsseDone.IsZero() {
				res.ConsumersAfterSeconds = time.Since(natsseDone).Seconds()
			}
			fmt.Fprintf(os.Stderr, "run %s: %.1f s after natsse's clients hung up: consumers per stream %v, natsse_upstream_consuming %v\n",
				c.name, res.ConsumersAfterSeconds, res.ConsumersAfter, res.UpstreamConsumingAfter)
			none := true
			for _, n := range res.ConsumersAfter {
				none = none && n == 0
			}
			if none || !time.Now().Before(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
	}
	if err != nil {
		return res, err
	}
	var n, ceil *phaseResult
	for _, ph := range res.Phases {
		switch ph.Target {
		case "natsse":
			n = ph
		case "ceiling":
			ceil = ph
		}
	}
	if n != nil && ceil != nil && ceil.PerServerCPU > 0 {
		res.Ratio = n.PerServerCPU / ceil.PerServerCPU
		if ceil.PerTotalCPU > 0 {
			res.RatioTotal = n.PerTotalCPU / ceil.PerTotalCPU
		}
		fmt.Fprintf(os.Stderr, "run %s: natsse at %.2fx the ceiling's deliveries per server CPU-second\n", c.name, res.Ratio)
	}
	return res, nil
}

// watched is the streams whose consumers a phase samples: S0..S<n-1> with
// several streams, else -stream (none when empty).
func (c runConfig) watched() []string {
	if c.sc.streams > 1 {
		names := make([]string, c.sc.streams)
		for k := range names {
			names[k] = streamName(k)
		}
		return names
	}
	if c.stream == "" {
		return nil
	}
	return []string{c.stream}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func cpuOf(d *procDelta) float64 {
	if d == nil {
		return 0
	}
	return d.CPU
}

// runPhase: start the client processes, wait until all are connected, sample
// the servers, publish, wait for the clients to finish, sample again.
func runPhase(c runConfig, t runTarget, runID string) (*phaseResult, error) {
	sc := c.sc
	p := plan{Count: sc.count, Users: sc.users, Streams: sc.streams, Run: runID}
	if sc.users == 0 {
		p.Subjects = []string{sc.subject}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+30*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var consumersBefore map[string]int
	if sc.streams > 1 {
		consumersBefore = consumerCounts(ctx, c.natsURL, c.watched())
	}
	var procs []*clientProc
	defer func() {
		for _, cp := range procs {
			cp.stop()
		}
	}()
	fast, slow := sc.clients, 0
	if sc.slowEvery > 0 {
		slow = sc.clients / sc.slowEvery
		fast -= slow
	}
	start := func(off, n int, extra ...string) error {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("natsse-bench-%s-%d.json", runID, off))
		if c.outDir != "" {
			out = filepath.Join(c.outDir, fmt.Sprintf("%s-%d.json", runID, off))
		}
		cp, err := startClients(ctx, self, out, append([]string{
			"-url", t.url, "-paths", sc.paths, "-n", strconv.Itoa(n), "-offset", strconv.Itoa(off),
			"-expect", p.String(), "-duration", c.timeout.String(), "-progress", "0",
		}, extra...))
		if err != nil {
			return err
		}
		cp.slow = len(extra) > 0
		procs = append(procs, cp)
		return nil
	}
	for off := 0; off < fast; off += c.perProcess {
		if err := start(off, min(c.perProcess, fast-off)); err != nil {
			return nil, err
		}
	}
	if slow > 0 {
		if err := start(fast, slow, "-read-rate", strconv.Itoa(sc.slowRate), "-rcvbuf", strconv.Itoa(sc.slowRcvBuf), "-reconnects", "100", "-bufsize", "4096"); err != nil {
			return nil, err
		}
	}
	if err := awaitConnected(ctx, procs); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // let the servers settle after the connection storm
	win, err := startWindow(c, t)
	if err != nil {
		return nil, err
	}
	cw := watchConsumers(ctx, c.natsURL, c.watched())
	prof := startProfile(ctx, c, t, runID)
	defer prof.wait()
	pub, err := publish(ctx, publishConfig{natsURL: c.natsURL, plan: p, rate: sc.rate, size: sc.size, maxPending: 4000, ackTimeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("publish: %v", err)
	}
	if err := awaitComplete(ctx, procs); err != nil {
		return nil, err
	}
	server, nats, total, err := win.finish()
	if err != nil {
		return nil, err
	}
	var consuming map[string]float64
	if sc.streams > 1 && t.name == "natsse" {
		consuming, err = scrapeGauge(ctx, t.url+"/metrics", "natsse_upstream_consuming")
		if err != nil {
			fmt.Fprintf(os.Stderr, "natsse metrics: %v\n", err)
		}
	}
	var sums, slowSums []*summary
	var clientCPU float64
	for _, cp := range procs {
		select {
		case <-cp.exited:
		case <-ctx.Done():
			return nil, errors.New("client processes did not finish in time")
		}
		if cp.err != nil {
			return nil, fmt.Errorf("client process: %v", cp.err)
		}
		clientCPU += (cp.cmd.ProcessState.UserTime() + cp.cmd.ProcessState.SystemTime()).Seconds()
		s, err := readSummary(cp.out)
		if c.outDir == "" {
			os.Remove(cp.out) // only kept with -out
		}
		if err != nil {
			return nil, err
		}
		if cp.slow {
			slowSums = append(slowSums, s)
		} else {
			sums = append(sums, s)
		}
	}
	ph := &phaseResult{Target: t.name, URL: t.url, Clients: mergeSummaries(sums), Publish: pub, ClientCPU: clientCPU}
	received := ph.Clients.Received
	if len(slowSums) > 0 {
		ph.Slow = mergeSummaries(slowSums)
		received += ph.Slow.Received
	}
	ph.MaxConsumers, ph.ConsumerSamples = cw.stop()
	if sc.streams > 1 {
		ph.ConsumersBefore, ph.MaxConsumersEach, ph.UpstreamConsuming = consumersBefore, cw.each, consuming
	}
	ph.Server, ph.NATS = server, nats
	if ph.Server != nil && ph.Server.CPU > 0 {
		ph.PerServerCPU = float64(received) / ph.Server.CPU
	}
	if ph.NATS != nil && total > 0 {
		ph.PerTotalCPU = float64(received) / total
	}
	if c.outDir != "" {
		b, _ := json.MarshalIndent(ph, "", "  ")
		_ = os.WriteFile(filepath.Join(c.outDir, runID+".json"), b, 0o644)
	}
	return ph, nil
}

// clientProc is one "natsse-bench clients" child process.
type clientProc struct {
	cmd       *exec.Cmd
	out       string
	ready     chan struct{}
	readyLine string        // set before ready is closed
	slow      bool          // S7: the slow readers
	complete  chan struct{} // closed when the process says every client got everything
	exited    chan struct{}
	err       error
}

func startClients(ctx context.Context, self, out string, args []string) (*clientProc, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"clients"}, args...)...)
	cmd.Stdout = f
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	cp := &clientProc{cmd: cmd, out: out, ready: make(chan struct{}), complete: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		cp.scan(stderr)
		cp.err = cmd.Wait()
		f.Close()
		close(cp.exited)
	}()
	return cp, nil
}

// awaitConnected waits until every client process says all its clients
// connected (or failed to).
func awaitConnected(ctx context.Context, procs []*clientProc) error {
	for _, cp := range procs {
		select {
		case <-cp.ready:
		case <-cp.exited:
			return fmt.Errorf("client process exited before connecting: %v", cp.err)
		case <-ctx.Done():
			return errors.New("clients did not connect in time")
		}
	}
	return nil
}

// awaitComplete waits until every client process says each of its clients
// has every expected event (or has exited).
func awaitComplete(ctx context.Context, procs []*clientProc) error {
	for _, cp := range procs {
		select {
		case <-cp.complete:
		case <-cp.exited:
		case <-ctx.Done():
			return errors.New("the clients did not get every expected event in time")
		}
	}
	return nil
}

// scan forwards the child's stderr and notices its READY line.
func (cp *clientProc) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	readyClosed, completeClosed := false, false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "READY ") && !readyClosed {
			cp.readyLine = line
			close(cp.ready)
			readyClosed = true
		}
		if strings.HasPrefix(line, "COMPLETE ") && !completeClosed {
			close(cp.complete)
			completeClosed = true
		}
		fmt.Fprintf(os.Stderr, "  [clients %d] %s\n", cp.cmd.Process.Pid, line)
	}
}

// stop ends the child if it still runs (SIGTERM: it prints its summary).
func (cp *clientProc) stop() {
	select {
	case <-cp.exited:
	default:
		_ = cp.cmd.Process.Signal(os.Interrupt)
		select {
		case <-cp.exited:
		case <-time.After(15 * time.Second):
			_ = cp.cmd.Process.Kill()
		}
	}
}

func readSummary(name string) (*summary, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	s := &summary{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return s, nil
}
