package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
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
// to every matching connection, whose writer writes all that has queued up in
// one Write. No JetStream, no resume, no HTTP library, no chunking. Every
// natsse figure is reported as a ratio to this server measured in the same
// run, which stays meaningful on a noisy machine.

// ceilingHeader is the whole response header: HTTP/1.1 without chunking, the
// body ends when the connection closes.
const ceilingHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

type ceiling struct {
	maxQueue     int
	writeTimeout time.Duration

	mu    sync.Mutex
	exact map[string][]*cconn // literal subject -> connections
	wild  []*cconn            // connections with at least one wildcard pattern
	seq   uint64              // id of the last frame; touched only by the NATS callback

	conns     atomic.Int64
	messages  atomic.Uint64
	delivered atomic.Uint64
	writes    atomic.Uint64
	slow      atomic.Uint64 // connections dropped because their queue was full
	closed    atomic.Uint64 // connections dropped on a write error
}

// cconn is one client connection of the ceiling server.
type cconn struct {
	nc      net.Conn
	wild    []string // wildcard patterns, matched per message
	lastSeq uint64   // last frame queued, so overlapping patterns get it once; under mu
	mu      sync.Mutex
	q       [][]byte // frames waiting for the writer
	writing bool     // a writer goroutine owns the connection
	dead    bool
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func cmdCeiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "HTTP listen address")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	subject := fs.String("subject", "events.>", "the one core NATS subscription")
	duration := fs.Duration("duration", time.Hour, "exit after this long (or on SIGINT/SIGTERM)")
	c := newCeiling()
	fs.IntVar(&c.maxQueue, "max-queue", 10000, "frames queued per connection before it is dropped as too slow")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "a write blocked this long drops the connection")
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

	nc, err := nats.Connect(*natsURL, nats.Name("natsse-bench ceiling"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := c.subscribe(nc, *subject)
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
	dropped, _ := sub.Dropped()
	_ = sub.Unsubscribe()
	return writeJSON(map[string]any{
		"connections": c.conns.Load(), "messages": c.messages.Load(), "delivered": c.delivered.Load(),
		"writes": c.writes.Load(), "slow_dropped": c.slow.Load(), "closed": c.closed.Load(), "nats_dropped": dropped,
	})
}

func newCeiling() *ceiling {
	return &ceiling{exact: map[string][]*cconn{}, maxQueue: 10000, writeTimeout: 30 * time.Second}
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
	cc := &cconn{nc: nc, writing: true}
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
	nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if _, err := nc.Write([]byte(ceilingHeader)); err != nil {
		c.kill(cc, &c.closed)
	}
	c.writer(cc)
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
	c.mu.Unlock()
	c.delivered.Add(n)
}

// queue appends frame to cc's queue and starts its writer if none runs. It
// reports whether the frame was queued and whether cc stays in the index.
// A frame already queued (overlapping patterns) is not queued again.
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
	start := !cc.writing
	cc.writing = true
	cc.mu.Unlock()
	if start {
		go c.writer(cc)
	}
	return true, true
}

// writer writes everything queued in one Write per round and exits when the
// queue is empty, so an idle connection holds no goroutine.
func (c *ceiling) writer(cc *cconn) {
	bp := writeBufs.Get().(*[]byte)
	defer writeBufs.Put(bp)
	for range 1 << 30 {
		cc.mu.Lock()
		if cc.dead || len(cc.q) == 0 {
			cc.writing = false
			cc.q = nil
			cc.mu.Unlock()
			return
		}
		b := (*bp)[:0]
		for _, f := range cc.q {
			b = append(b, f...)
		}
		clear(cc.q)
		cc.q = cc.q[:0]
		cc.mu.Unlock()
		*bp = b
		cc.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		c.writes.Add(1)
		if _, err := cc.nc.Write(b); err != nil {
			c.kill(cc, &c.closed)
			return
		}
		if cap(b) > 1<<20 {
			*bp = make([]byte, 0, 16<<10) // do not pool huge buffers
		}
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
