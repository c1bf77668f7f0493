package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/natsse/natsse/subjects"
)

// clientsConfig holds the flags of "natsse-bench clients".
type clientsConfig struct {
	base           *url.URL
	paths          []string
	n, offset      int
	plan           *plan
	duration       time.Duration
	connectTimeout time.Duration
	linger         time.Duration
	concurrency    int
	sources        int
	bufSize        int
	lastEventID    string
	reconnects     int
	progress       time.Duration
	readRate       int // bytes per second each client reads at most; 0: as fast as it can
	rcvBuf         int // SO_RCVBUF of each socket; 0: the system's
}

func cmdClients(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	var c clientsConfig
	rawURL := fs.String("url", "http://127.0.0.1:8080", "server base URL (http only)")
	paths := fs.String("paths", "/events/bench", "comma-separated request targets, assigned round-robin; {i} is the client's index (modulo the plan's users when it has users); {s} is the stream of user {i} when the plan has streams=N (0..N-1, so /events{s}/users/{i} is user {i}'s subject), else empty")
	fs.IntVar(&c.n, "n", 100, "number of clients")
	fs.IntVar(&c.offset, "offset", 0, "index of this process's first client (for {i} and source addresses when several processes share a run)")
	expect := fs.String("expect", "", "publish plan the clients account against, e.g. count=2000,subjects=events.bench,run=x (empty: count events only)")
	fs.DurationVar(&c.duration, "duration", time.Minute, "hard limit: stop and report after this long")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 30*time.Second, "limit for dialing and receiving the response header")
	fs.DurationVar(&c.linger, "linger", 500*time.Millisecond, "with -expect: keep reading this long after every client got everything (catches duplicates)")
	fs.IntVar(&c.concurrency, "concurrency", 200, "connection attempts in flight at once")
	fs.IntVar(&c.sources, "sources", 254, "spread connections over source addresses 127.0.0.1..127.0.0.<sources>")
	fs.IntVar(&c.bufSize, "bufsize", 4096, "read buffer per client, bytes")
	fs.StringVar(&c.lastEventID, "last-event-id", "", "send this Last-Event-ID header on the first connection")
	fs.IntVar(&c.reconnects, "reconnects", 0, "how often a client reconnects (with Last-Event-ID) after the server ended its stream")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "interval of progress lines on stderr (0: none)")
	fs.IntVar(&c.readRate, "read-rate", 0, "slow readers: bytes per second each client reads at most (0: as fast as it can)")
	fs.IntVar(&c.rcvBuf, "rcvbuf", 0, "SO_RCVBUF of each client socket in bytes, so that a slow reader's backlog stays at the server (0: the system's)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench clients [flags]: open N SSE streams, account for every event, print a JSON summary on stdout.\nA line \"READY connected=N failed=M\" goes to stderr once every client has connected or failed.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.base, err = url.Parse(*rawURL); err != nil || c.base.Scheme != "http" || c.base.Host == "" {
		return fmt.Errorf("-url %q: want http://host:port", *rawURL)
	}
	if c.base.Port() == "" {
		c.base.Host += ":80"
	}
	c.paths = strings.Split(*paths, ",")
	if *expect != "" {
		p, err := parsePlan(*expect)
		if err != nil {
			return err
		}
		c.plan = &p
	}
	if c.n < 1 || c.bufSize < 512 || c.concurrency < 1 {
		return fmt.Errorf("need -n >= 1, -bufsize >= 512, -concurrency >= 1")
	}
	s, err := runClients(c)
	if err != nil {
		return err
	}
	return writeJSON(s)
}

// runner is the state shared by the clients of one process.
type runner struct {
	cfg       clientsConfig
	dialer    *spreadDialer
	hist      histogram
	streams   []histogram // per stream of the plan, when it has several
	runID     []byte      // nil: accept payloads of any run
	sem       chan struct{}
	pending   atomic.Int64 // clients not yet connected or failed
	connected atomic.Int64
	complete  atomic.Int64
	notify    chan struct{}
}

// client is one SSE stream and its accounting. It is touched only by its own
// goroutine until the runner has waited for that goroutine.
type client struct {
	r      *runner
	idx    int // global index
	target string
	stream int // index of the stream of its subjects when the plan has several, else -1
	exp    *expectation
	acct   *account // nil without a plan

	connected  bool
	failReason string
	done       bool // counted in runner.complete
	now        int64
	first      int64
	last       int64
	untracked  uint64 // events received without a plan
	prevID     uint64
	haveID     bool
	idRegress  uint64
	resets     uint64
	expired    uint64
	comments   uint64
	reconnects uint64
	ended      uint64
	parser     sseParser
	chunked    bool   // the current response is chunked
	buf        []byte // read buffer, kept across reconnects
}

func runClients(cfg clientsConfig) (*summary, error) {
	d, err := newSpreadDialer(cfg.base.Hostname(), cfg.sources, cfg.connectTimeout)
	if err != nil {
		return nil, err
	}
	d.rcvBuf = cfg.rcvBuf
	r := &runner{cfg: cfg, dialer: d, sem: make(chan struct{}, cfg.concurrency), notify: make(chan struct{}, 1)}
	if cfg.plan != nil && cfg.plan.Run != "" {
		r.runID = []byte(cfg.plan.Run)
	}
	if cfg.plan != nil && cfg.plan.Streams > 1 {
		r.streams = make([]histogram, cfg.plan.Streams)
	}
	clients, err := r.makeClients()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	start := time.Now()
	r.pending.Store(int64(len(clients)))
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx) })
	}
	connectSeconds := r.wait(ctx, cancel, start, clients)
	cancel()
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(cfg.connectTimeout + 10*time.Second):
		return nil, fmt.Errorf("clients did not stop within %v of the end", cfg.connectTimeout+10*time.Second)
	}
	return r.summarize(clients, connectSeconds), nil
}

// makeClients assigns targets and expectations; clients with the same
// subjects share one expectation.
func (r *runner) makeClients() ([]*client, error) {
	cfg := r.cfg
	exps := newExpectations(cfg.plan)
	clients := make([]*client, cfg.n)
	for i := range clients {
		gi := cfg.offset + i
		ti := gi
		if cfg.plan != nil && cfg.plan.Users > 0 {
			ti = gi % cfg.plan.Users
		}
		target := strings.ReplaceAll(cfg.paths[i%len(cfg.paths)], "{i}", strconv.Itoa(ti))
		s := ""
		if cfg.plan != nil && cfg.plan.Streams > 1 {
			s = strconv.Itoa(cfg.plan.streamOfUser(ti))
		}
		target = strings.ReplaceAll(target, "{s}", s)
		if cfg.base.Path != "" && cfg.base.Path != "/" {
			target = strings.TrimSuffix(cfg.base.Path, "/") + target
		}
		c := &client{r: r, idx: gi, target: target, stream: -1}
		c.parser.h = c
		if cfg.plan != nil {
			subs, err := requestSubjects(strings.TrimPrefix(target, strings.TrimSuffix(cfg.base.Path, "/")))
			if err != nil {
				return nil, fmt.Errorf("client %d: %v", gi, err)
			}
			if cfg.plan.Streams > 1 {
				// The stream that serves the client: its subjects' stream,
				// the same for all of them (natsse answers 400 otherwise).
				c.stream = cfg.plan.streamOf(subs[0])
				for _, sub := range subs[1:] {
					if cfg.plan.streamOf(sub) != c.stream {
						return nil, fmt.Errorf("client %d: %s has subjects of two streams", gi, target)
					}
				}
				if c.stream < 0 {
					return nil, fmt.Errorf("client %d: %s is in none of the plan's %d streams", gi, target, cfg.plan.Streams)
				}
			}
			c.exp = exps.get(subs)
			c.acct = newAccount(c.exp.n)
		}
		clients[i] = c
	}
	return clients, nil
}

// wait blocks until the run is over: the deadline or a signal, or with a
// plan every connected client complete (plus the linger time). It returns the
// seconds until every client had connected or failed.
func (r *runner) wait(ctx context.Context, cancel context.CancelFunc, start time.Time, clients []*client) float64 {
	var connectSeconds float64
	var progress <-chan time.Time
	if r.cfg.progress > 0 {
		t := time.NewTicker(r.cfg.progress)
		defer t.Stop()
		progress = t.C
	}
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	ready := false
	for {
		select {
		case <-ctx.Done():
			if !ready {
				connectSeconds = time.Since(start).Seconds()
			}
			return connectSeconds
		case <-progress:
			fmt.Fprintf(os.Stderr, "clients: %.0fs pending=%d complete=%d\n", time.Since(start).Seconds(), r.pending.Load(), r.complete.Load())
		case <-r.notify:
		case <-poll.C:
		}
		if !ready && r.pending.Load() == 0 {
			ready = true
			connectSeconds = time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "READY clients=%d connected=%d connect_seconds=%.2f\n", len(clients), r.connected.Load(), connectSeconds)
		}
		if ready && r.cfg.plan != nil && r.complete.Load() == int64(len(clients)) {
			// "run" samples the servers' CPU here, before the clients hang up,
			// so no server is charged for closing connections.
			fmt.Fprintf(os.Stderr, "COMPLETE clients=%d\n", len(clients))
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.linger):
			}
			cancel()
			return connectSeconds
		}
	}
}

// run connects, reads until the stream ends or the run stops, and reconnects
// with Last-Event-ID at most cfg.reconnects times.
func (c *client) run(ctx context.Context) {
	cfg := c.r.cfg
	lastID := cfg.lastEventID
	for attempt := 0; ; attempt++ {
		conn, rest, err := c.connect(ctx, lastID)
		if attempt == 0 {
			c.r.pending.Add(-1)
		}
		if err != nil {
			if attempt == 0 {
				c.failReason = err.Error()
				c.markIfComplete() // a failed client will never complete; do not wait for it
			}
			return
		}
		if attempt == 0 {
			c.connected = true
			c.r.connected.Add(1)
			c.markIfComplete()
		}
		c.read(ctx, conn, rest)
		conn.Close()
		if ctx.Err() != nil || attempt >= cfg.reconnects {
			return
		}
		c.ended++
		c.reconnects++
		lastID = string(c.parser.lastID)
		delay := time.Duration(min(max(c.parser.retry, 50), 5000)) * time.Millisecond
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// markIfComplete counts the client once it has all it expects (or failed).
func (c *client) markIfComplete() {
	if c.done || c.r.cfg.plan == nil {
		return
	}
	if !c.connected || c.acct.complete() {
		c.done = true
		c.r.complete.Add(1)
		select {
		case c.r.notify <- struct{}{}:
		default:
		}
	}
}

// connect dials, sends the request and reads the response header. rest is the
// part of the first read beyond the header, in a buffer the client keeps.
func (c *client) connect(ctx context.Context, lastID string) (net.Conn, []byte, error) {
	select {
	case c.r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, errors.New("stopped before connecting")
	}
	defer func() { <-c.r.sem }()
	cfg := c.r.cfg
	conn, err := c.r.dialer.dial(c.idx, cfg.base.Host)
	if err != nil {
		return nil, nil, errors.New(errClass("dial", err))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn.SetDeadline(time.Now().Add(cfg.connectTimeout))
	req := make([]byte, 0, 256)
	req = append(req, "GET "...)
	req = append(req, c.target...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, cfg.base.Host...)
	req = append(req, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"...)
	if lastID != "" {
		req = append(req, "Last-Event-ID: "...)
		req = append(req, lastID...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		return nil, nil, errors.New(errClass("write", err))
	}
	buf := c.buf
	if buf == nil {
		buf = make([]byte, cfg.bufSize)
	}
	n := 0
	for {
		if n == len(buf) {
			conn.Close()
			return nil, nil, errors.New("response header too large")
		}
		k, err := conn.Read(buf[n:])
		n += k
		h, hn, perr := parseHead(buf[:n])
		if perr != nil {
			conn.Close()
			return nil, nil, perr
		}
		if hn > 0 {
			switch {
			case h.status != 200:
				conn.Close()
				return nil, nil, fmt.Errorf("status %d", h.status)
			case !strings.HasPrefix(h.ctype, "text/event-stream"):
				conn.Close()
				return nil, nil, fmt.Errorf("content-type %q", h.ctype)
			}
			conn.SetDeadline(time.Time{})
			c.chunked = h.chunked
			c.buf = buf
			return conn, buf[hn:n], nil
		}
		if err != nil {
			conn.Close()
			return nil, nil, errors.New(errClass("read header", err))
		}
	}
}

// read consumes the body until EOF, an error or the end of the run.
func (c *client) read(ctx context.Context, conn net.Conn, rest []byte) {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var dec chunkDecoder
	c.parser.line = c.parser.line[:0]
	c.parser.lastCR = false
	c.parser.data = c.parser.data[:0]
	c.parser.typ = c.parser.typ[:0]
	feed := func(p []byte) bool {
		if len(p) == 0 {
			return true
		}
		c.now = time.Now().UnixNano()
		var err error
		done := false
		if c.chunked {
			done, err = dec.decode(p, &c.parser)
		} else {
			err = c.parser.feed(p)
		}
		c.markIfComplete()
		return err == nil && !done
	}
	if !feed(rest) {
		return
	}
	buf := c.buf
	if c.r.cfg.readRate > 0 {
		buf = buf[:min(len(buf), max(c.r.cfg.readRate/10, 64))] // about ten reads a second
	}
	began, total := time.Now(), 0
	for {
		n, err := conn.Read(buf)
		if !feed(buf[:n]) || err != nil {
			return
		}
		if rate := c.r.cfg.readRate; rate > 0 {
			total += n
			due := began.Add(time.Duration(float64(total) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// event implements eventHandler: one SSE event of this client's stream.
func (c *client) event(id, typ, data []byte) {
	switch string(typ) {
	case "", "message":
	case "reset":
		c.resets++
		c.prevID, c.haveID = 0, false
		return
	case "expired":
		c.expired++
		return
	}
	if n, ok := atou(id); !ok || (c.haveID && n <= c.prevID) {
		c.idRegress++
	} else {
		c.prevID, c.haveID = n, true
	}
	if c.first == 0 {
		c.first = c.now
	}
	c.last = c.now
	p, ok := parsePayload(data)
	if c.acct == nil {
		c.untracked++
	} else if !ok || (c.r.runID != nil && !bytes.Equal(p.run, c.r.runID)) {
		c.acct.observeUnexpected()
		return
	} else if i, ok := c.exp.index(p.global); ok {
		c.acct.observe(i)
	} else {
		c.acct.observeUnexpected()
		return
	}
	if ok {
		lat := uint64(max(c.now-p.nanos, 0))
		c.r.hist.add(c.idx, lat)
		if c.stream >= 0 {
			c.r.streams[c.stream].add(c.idx, lat)
		}
	}
}

func (c *client) comment() { c.comments++ }

// summarize folds the clients into one summary; call it only after every
// client goroutine has returned.
func (r *runner) summarize(clients []*client, connectSeconds float64) *summary {
	s := &summary{Target: r.cfg.base.String(), Processes: 1, Clients: len(clients), ConnectSeconds: connectSeconds}
	if r.cfg.plan != nil {
		s.Plan = r.cfg.plan.String()
	}
	for k := range r.streams {
		if s.ByStream == nil {
			s.ByStream = map[string]*streamSummary{}
		}
		s.ByStream[streamName(k)] = &streamSummary{Hist: r.streams[k].snapshot()}
	}
	for _, c := range clients {
		if c.stream >= 0 {
			c.addTo(s.ByStream[streamName(c.stream)])
		}
		if !c.connected {
			s.Failed++
			if s.FailReasons == nil {
				s.FailReasons = map[string]int{}
			}
			s.FailReasons[c.failReason]++
			if c.acct != nil {
				s.accountReport.add(c.acct.report())
			}
			continue
		}
		s.Connected++
		if c.acct != nil {
			s.accountReport.add(c.acct.report())
			if c.acct.complete() {
				s.Complete++
			}
		} else {
			s.Received += c.untracked
		}
		s.IDRegressions += c.idRegress
		s.Resets += c.resets
		s.Expired += c.expired
		s.Comments += c.comments
		s.Reconnects += c.reconnects
		s.Ended += c.ended
		if c.first != 0 && (s.FirstEvent == 0 || c.first < s.FirstEvent) {
			s.FirstEvent = c.first
		}
		s.LastEvent = max(s.LastEvent, c.last)
	}
	s.Hist = r.hist.snapshot()
	s.finish()
	return s
}

// addTo adds the client to the summary of its stream.
func (c *client) addTo(st *streamSummary) {
	st.Clients++
	if c.acct != nil {
		st.accountReport.add(c.acct.report())
	}
	if !c.connected {
		return
	}
	st.Connected++
	if c.acct != nil && c.acct.complete() {
		st.Complete++
	}
	st.IDRegressions += c.idRegress
	st.Resets += c.resets
	st.Ended += c.ended
}

// errClass names an error without the addresses in it, so that failure
// reasons of thousands of clients collapse into a few map keys.
func errClass(op string, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return op + ": connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return op + ": connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return op + ": address not available (ports exhausted)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return op + ": too many open files"
	case errors.As(err, &ne) && ne.Timeout():
		return op + ": timeout"
	case errors.Is(err, net.ErrClosed):
		return op + ": closed"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return op + ": " + msg
}

// expectations caches one expectation per distinct subject set, and looks
// literal subjects up by name instead of matching every plan subject.
type expectations struct {
	plan  *plan
	cache map[string]*expectation
	slot  map[string]int
}

func newExpectations(p *plan) *expectations {
	return &expectations{plan: p, cache: map[string]*expectation{}}
}

func (x *expectations) get(subs []string) *expectation {
	key := strings.Join(subs, "\x00")
	if e, ok := x.cache[key]; ok {
		return e
	}
	var e *expectation
	literal := true
	for _, s := range subs {
		literal = literal && subjects.IsLiteral(s)
	}
	if literal {
		if x.slot == nil {
			x.slot = map[string]int{}
			for j := range x.plan.numSubjects() {
				x.slot[x.plan.subject(j)] = j
			}
		}
		var slots []int
		for _, s := range subs {
			if j, ok := x.slot[s]; ok {
				slots = append(slots, j)
			}
		}
		e = newExpectationSlots(*x.plan, slots)
	} else {
		e = newExpectation(*x.plan, subs)
	}
	x.cache[key] = e
	return e
}
