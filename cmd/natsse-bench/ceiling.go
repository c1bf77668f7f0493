package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natsse/natsse/subjects"
)

// The ceiling server is the yardstick: the least work any SSE gateway must
// do to deliver the same frames to the same clients. One core NATS
// subscription, each message encoded into a frame once, and the frame handed
// to every matching connection. A fixed pool of writers (one per core) writes
// each connection's queued frames with one non-blocking write; only a
// connection whose socket buffer is full gets a goroutine of its own until it
// has caught up. No JetStream, no resume, no HTTP library, no chunking, no
// goroutine or buffer per connection. Every natsse figure is reported as a
// ratio to this server measured in the same run, which stays meaningful on a
// noisy machine.

// ceilingHeader is the whole response header: HTTP/1.1 without chunking, the
// body ends when the connection closes.
const ceilingHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

type ceiling struct {
	maxQueue     int
	writeTimeout time.Duration

	mu      sync.Mutex
	exact   map[string][]*cconn // literal subject -> connections
	wild    []*cconn            // connections with at least one wildcard pattern
	seq     uint64              // id of the last frame; touched only by the NATS callback
	writers []*cwriter
	batches [][]*cconn // per writer, connections that became ready in this dispatch; under mu
	next    atomic.Uint64

	conns     atomic.Int64
	messages  atomic.Uint64
	delivered atomic.Uint64
	writes    atomic.Uint64
	slowMode  atomic.Uint64 // times a connection's socket was full and it got its own goroutine
	slow      atomic.Uint64 // connections dropped because their queue was full
	closed    atomic.Uint64 // connections dropped on a write error
}

// Who writes a connection's queue.
const (
	stateIdle      = iota // nothing queued; the next frame schedules it on its writer
	stateScheduled        // on its writer's ready list or being written by it
	stateOwn              // a goroutine of its own writes (headers, or a full socket)
)

// cconn is one client connection of the ceiling server.
type cconn struct {
	nc      net.Conn
	rc      syscall.RawConn // nil: not a socket, every write takes the slow path
	w       *cwriter
	widx    int      // w's index in ceiling.writers
	wild    []string // wildcard patterns, matched per message
	lastSeq uint64   // last frame queued, so overlapping patterns get it once; under ceiling.mu
	mu      sync.Mutex
	q       [][]byte // frames waiting to be written
	state   uint8
	dead    bool
}

// cwriter is one of the writer goroutines: it writes the connections put on
// its ready list, one non-blocking write each.
type cwriter struct {
	mu    sync.Mutex
	ready []*cconn
	wake  chan struct{} // one pending signal is enough
	buf   []byte
}

func cmdCeiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "HTTP listen address")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	subject := fs.String("subject", "events.>", "the one core NATS subscription, or a comma-separated list of subjects (one subscription each, e.g. events0.>,events1.>,events2.> for a plan with streams=3)")
	duration := fs.Duration("duration", time.Hour, "exit after this long (or on SIGINT/SIGTERM)")
	c := newCeiling()
	fs.IntVar(&c.maxQueue, "max-queue", 10000, "frames queued per connection before it is dropped as too slow")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "a write blocked this long drops the connection")
	pprofAddr := fs.String("pprof", "", "serve Go's /debug/pprof on this address (off when empty)")
	sweep := fs.Duration("sweep", 5*time.Second, "interval of the check for connections the clients closed (0: only on write errors)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench ceiling [flags]: the raw-socket SSE server natsse is compared against.\nGET /events/a/b, /events/users/*, ?subject=... like natsse; ids are the server's own counter.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *duration)
	defer cancel2()

	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		go func() { _ = http.Serve(pln, nil) }() // net/http/pprof registers on the default mux
	}
	nc, err := nats.Connect(*natsURL, nats.Name("natsse-bench ceiling"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	subs, err := c.subscribeAll(nc, strings.Split(*subject, ","))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ceiling: listening on http://%s, subscribed to %s on %s\n", ln.Addr(), *subject, *natsURL)
	go func() { <-ctx.Done(); ln.Close() }()
	go c.report(ctx)
	go c.sweep(ctx, *sweep)
	c.accept(ctx, ln)
	dropped := 0
	for _, sub := range subs {
		d, _ := sub.Dropped()
		dropped += d
		_ = sub.Unsubscribe()
	}
	return writeJSON(map[string]any{
		"connections": c.conns.Load(), "messages": c.messages.Load(), "delivered": c.delivered.Load(),
		"writes": c.writes.Load(), "own_writer_starts": c.slowMode.Load(), "slow_dropped": c.slow.Load(), "closed": c.closed.Load(), "nats_dropped": dropped,
	})
}

func newCeiling() *ceiling {
	c := &ceiling{exact: map[string][]*cconn{}, maxQueue: 10000, writeTimeout: 30 * time.Second}
	for range runtime.GOMAXPROCS(0) {
		w := &cwriter{wake: make(chan struct{}, 1), buf: make([]byte, 0, 64<<10)}
		c.writers = append(c.writers, w)
		go c.runWriter(w)
	}
	c.batches = make([][]*cconn, len(c.writers))
	return c
}

// subscribe makes the one core NATS subscription.
func (c *ceiling) subscribe(nc *nats.Conn, subject string) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subject, c.dispatch)
	if err != nil {
		return nil, err
	}
	// The ceiling must not be the one dropping messages.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	return sub, nc.Flush()
}

// subscribeAll subscribes to each subject. With more than one, each
// subscription has a goroutine of its own in nats.go, and dispatch numbers
// frames and deduplicates overlapping patterns assuming one caller at a time,
// so the callbacks take turns on a mutex; with one subject nothing changes.
func (c *ceiling) subscribeAll(nc *nats.Conn, subjects []string) ([]*nats.Subscription, error) {
	if len(subjects) == 1 {
		sub, err := c.subscribe(nc, subjects[0])
		return []*nats.Subscription{sub}, err
	}
	var mu sync.Mutex
	var subs []*nats.Subscription
	for _, s := range subjects {
		sub, err := nc.Subscribe(s, func(m *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			c.dispatch(m)
		})
		if err == nil {
			err = sub.SetPendingLimits(-1, -1)
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, err
		}
		subs = append(subs, sub)
	}
	return subs, nc.Flush()
}

// accept runs until the listener is closed.
func (c *ceiling) accept(ctx context.Context, ln net.Listener) {
	for ctx.Err() == nil {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off
			continue
		}
		go c.serve(nc)
	}
}

func (c *ceiling) report(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Fprintf(os.Stderr, "ceiling: conns=%d messages=%d delivered=%d writes=%d slow=%d closed=%d\n",
				c.conns.Load(), c.messages.Load(), c.delivered.Load(), c.writes.Load(), c.slow.Load(), c.closed.Load())
		}
	}
}

// serve reads the request, subscribes the connection, then sends the header.
// The connection is in the index before the header goes out, so a message
// published the moment the client sees the header is delivered; frames queued
// meanwhile wait because the connection is marked as being written.
func (c *ceiling) serve(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	target, err := readRequest(nc)
	var subs []string
	if err == nil {
		subs, err = requestSubjects(target)
	}
	if err != nil {
		nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		nc.Close()
		return
	}
	// Until the header is out, the connection's own goroutine writes it.
	widx := int(c.next.Add(1) % uint64(len(c.writers)))
	cc := &cconn{nc: nc, state: stateOwn, w: c.writers[widx], widx: widx}
	if sc, ok := nc.(syscall.Conn); ok {
		cc.rc, _ = sc.SyscallConn()
	}
	var exact []string
	for _, s := range subs {
		if !subjects.IsLiteral(s) {
			cc.wild = append(cc.wild, s)
		} else {
			exact = append(exact, s)
		}
	}
	c.mu.Lock()
	for _, s := range exact {
		c.exact[s] = append(c.exact[s], cc)
	}
	if len(cc.wild) > 0 {
		c.wild = append(c.wild, cc)
	}
	c.mu.Unlock()
	c.conns.Add(1)
	nc.SetDeadline(time.Time{})
	c.ownWriter(cc, []byte(ceilingHeader))
}

// readRequest reads a request head and returns its target; the rest of the
// head is ignored.
func readRequest(nc net.Conn) (string, error) {
	buf := make([]byte, 0, 1024)
	for len(buf) < 8192 {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			line, _, _ := bytes.Cut(buf, []byte("\r\n"))
			f := bytes.Fields(line)
			if len(f) != 3 || string(f[0]) != "GET" || !bytes.HasPrefix(f[2], []byte("HTTP/1.")) {
				return "", fmt.Errorf("bad request line %q", line)
			}
			return string(f[1]), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("request head too large")
}

// dispatch is the NATS callback (one goroutine): encode the frame once, queue
// it on every matching connection.
func (c *ceiling) dispatch(m *nats.Msg) {
	c.seq++
	c.messages.Add(1)
	frame := appendFrame(make([]byte, 0, len(m.Data)+32), c.seq, m.Data)
	var n uint64
	c.mu.Lock()
	if list, ok := c.exact[m.Subject]; ok {
		live := list[:0]
		for _, cc := range list {
			queued, alive := c.queue(cc, frame)
			if queued {
				n++
			}
			if alive {
				live = append(live, cc)
			}
		}
		clear(list[len(live):])
		if len(live) == 0 {
			delete(c.exact, m.Subject)
		} else {
			c.exact[m.Subject] = live
		}
	}
	if len(c.wild) > 0 {
		live := c.wild[:0]
		for _, cc := range c.wild {
			alive := true
			for _, p := range cc.wild {
				if subjects.Match(p, m.Subject) {
					var queued bool
					if queued, alive = c.queue(cc, frame); queued {
						n++
					}
					break
				}
			}
			if alive {
				live = append(live, cc)
			}
		}
		clear(c.wild[len(live):])
		c.wild = live
	}
	for i, b := range c.batches {
		if len(b) == 0 {
			continue
		}
		w := c.writers[i]
		w.mu.Lock()
		w.ready = append(w.ready, b...)
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
		clear(b)
		c.batches[i] = b[:0]
	}
	c.mu.Unlock()
	c.delivered.Add(n)
}

// queue appends frame to cc's queue and, when nobody is about to write it,
// puts it on its writer's batch. It reports whether the frame was queued
// and whether cc stays in the index. A frame already queued (overlapping
// patterns) is not queued again. Called under c.mu.
func (c *ceiling) queue(cc *cconn, frame []byte) (queued, alive bool) {
	cc.mu.Lock()
	if cc.dead {
		cc.mu.Unlock()
		return false, false
	}
	if cc.lastSeq == c.seq {
		cc.mu.Unlock()
		return false, true
	}
	cc.lastSeq = c.seq
	if len(cc.q) >= c.maxQueue {
		cc.mu.Unlock()
		c.kill(cc, &c.slow)
		return false, false
	}
	cc.q = append(cc.q, frame)
	schedule := cc.state == stateIdle
	if schedule {
		cc.state = stateScheduled
	}
	cc.mu.Unlock()
	if schedule {
		c.batches[cc.widx] = append(c.batches[cc.widx], cc)
	}
	return true, true
}

// runWriter writes the connections on w's ready list, forever.
func (c *ceiling) runWriter(w *cwriter) {
	var batch []*cconn
	for range w.wake {
		w.mu.Lock()
		batch, w.ready = w.ready, batch[:0]
		w.mu.Unlock()
		for i, cc := range batch {
			c.flush(w, cc)
			batch[i] = nil
		}
	}
}

// flush writes everything queued on cc with one non-blocking write. What
// the socket does not take goes to a goroutine of cc's own, so one slow
// client never holds up the others on this writer.
func (c *ceiling) flush(w *cwriter, cc *cconn) {
	cc.mu.Lock()
	if cc.dead || cc.state != stateScheduled {
		cc.mu.Unlock()
		return
	}
	b := w.buf[:0]
	for _, f := range cc.q {
		b = append(b, f...)
	}
	clear(cc.q)
	cc.q = cc.q[:0]
	cc.mu.Unlock()
	if cap(b) <= 1<<20 {
		w.buf = b // keep a grown buffer, but not a huge one
	}
	n := 0
	if cc.rc != nil {
		var werr error
		c.writes.Add(1)
		err := cc.rc.Write(func(fd uintptr) bool {
			n, werr = syscall.Write(int(fd), b)
			return true // one attempt: never wait for the socket here
		})
		if n < 0 {
			n = 0
		}
		if err != nil || (werr != nil && werr != syscall.EAGAIN && werr != syscall.EINTR) {
			c.kill(cc, &c.closed)
			return
		}
	}
	cc.mu.Lock()
	if cc.dead {
		cc.mu.Unlock()
		return
	}
	if n < len(b) {
		cc.state = stateOwn
		cc.mu.Unlock()
		c.slowMode.Add(1)
		go c.ownWriter(cc, append([]byte(nil), b[n:]...))
		return
	}
	if len(cc.q) == 0 {
		cc.state = stateIdle
		cc.mu.Unlock()
		return
	}
	cc.mu.Unlock()
	// More arrived meanwhile: write it in this writer's next round.
	w.mu.Lock()
	w.ready = append(w.ready, cc)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// ownWriter writes rest and then the queue with blocking writes until the
// queue is empty, then hands cc back to its writer.
func (c *ceiling) ownWriter(cc *cconn, rest []byte) {
	for range 1 << 30 {
		// In pieces, each with its own deadline: a client that reads, however
		// slowly, is never dropped; one that stops reading is.
		for b := rest; len(b) > 0; {
			n := min(len(b), 16<<10)
			cc.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
			c.writes.Add(1)
			if _, err := cc.nc.Write(b[:n]); err != nil {
				c.kill(cc, &c.closed)
				return
			}
			b = b[n:]
		}
		cc.mu.Lock()
		if cc.dead {
			cc.mu.Unlock()
			return
		}
		if len(cc.q) == 0 {
			cc.state = stateIdle
			cc.mu.Unlock()
			return
		}
		rest = rest[:0]
		for _, f := range cc.q {
			rest = append(rest, f...)
		}
		clear(cc.q)
		cc.q = cc.q[:0]
		cc.mu.Unlock()
	}
}

// sweep closes, every interval, the connections whose client has gone. The
// server never reads after the request, so without it an idle connection the
// client closed would hold its file until the next frame for it fails, and
// one scenario's 19,000 dead sockets would eat the next one's file limit.
func (c *ceiling) sweep(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var buf [1]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var all []*cconn
		c.mu.Lock()
		for _, list := range c.exact {
			all = append(all, list...)
		}
		all = append(all, c.wild...)
		c.mu.Unlock()
		for _, cc := range all {
			if peerClosed(cc.nc, buf[:]) {
				c.kill(cc, &c.closed)
			}
		}
		// Dead connections leave the index when a message reaches them;
		// drop them here too so the index does not grow across scenarios.
		c.mu.Lock()
		for s, list := range c.exact {
			live := list[:0]
			for _, cc := range list {
				if !cc.isDead() {
					live = append(live, cc)
				}
			}
			clear(list[len(live):])
			if len(live) == 0 {
				delete(c.exact, s)
			} else {
				c.exact[s] = live
			}
		}
		live := c.wild[:0]
		for _, cc := range c.wild {
			if !cc.isDead() {
				live = append(live, cc)
			}
		}
		clear(c.wild[len(live):])
		c.wild = live
		c.mu.Unlock()
	}
}

func (cc *cconn) isDead() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.dead
}

// peerClosed peeks at the socket without blocking: EOF or an error other
// than "would block" means the client is gone (a client sending more bytes
// after its request is ignored and counts as alive).
func peerClosed(nc net.Conn, buf []byte) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
		return true
	})
	return closed || err != nil
}

// kill closes a connection; the dispatcher drops it from the index.
func (c *ceiling) kill(cc *cconn, why *atomic.Uint64) {
	cc.mu.Lock()
	if cc.dead {
		cc.mu.Unlock()
		return
	}
	cc.dead = true
	cc.q = nil
	cc.mu.Unlock()
	cc.nc.Close()
	why.Add(1)
	c.conns.Add(-1)
}

// appendFrame encodes one SSE event: "id: <seq>", one "data: " line per
// payload line (split on CRLF, LF and CR, as SSE readers split), blank line.
func appendFrame(b []byte, seq uint64, data []byte) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\n')
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, "data: "...)
			b = append(b, data...)
			b = append(b, '\n', '\n')
			return b
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}
