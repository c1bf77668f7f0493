package cursors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// takeovers lets the newest connection of a named cursor close the older
// one, on whichever replica it runs.
//
// Each connection holding a cursor subscribes (core NATS) to
// _natsse.durable.<stream>.<consumer>. A new connection for an existing name
// first sends a request there. With nobody holding the name NATS answers "no
// responders" at once; otherwise the holder closes its stream, saves its last
// position, and only then replies, so the new connection reads exactly where
// the old one stopped. (One wildcard subscription per process instead would
// give no such answer: every request would wait for a timeout when nobody
// holds the name.) The subscriptions are channel subscriptions into one
// dispatcher per process, so a held cursor costs a subscription, not a
// goroutine.
//
// Two connections for one name arriving within the same instant on two
// replicas may both find nobody holding it and both run; the next connection
// with the name closes both.
type takeovers struct {
	log    *slog.Logger
	nc     *nats.Conn
	prefix string
	ch     chan *nats.Msg

	mu   sync.Mutex
	held map[string]*Cursor // by subject
}

const (
	// takeoverGrace is how long a stream taken over may take to write what is
	// queued before its connection is cut.
	takeoverGrace = time.Second
	// takeoverWait bounds the wait for the older connection; a replica that
	// does not answer in time loses the name anyway.
	takeoverWait = 5 * time.Second
)

func newTakeovers(stream string, nc *nats.Conn, log *slog.Logger) *takeovers {
	return &takeovers{
		log: log, nc: nc,
		prefix: "_natsse.durable." + stream + ".",
		ch:     make(chan *nats.Msg, 256),
		held:   map[string]*Cursor{},
	}
}

// takeOver closes any connection holding the consumer's cursor, and returns
// once it has saved its position (or did not answer within takeoverWait).
func (t *takeovers) takeOver(ctx context.Context, consumer string) error {
	wait, cancel := context.WithTimeout(ctx, takeoverWait)
	defer cancel()
	_, err := t.nc.RequestWithContext(wait, t.prefix+consumer, nil)
	switch {
	case err == nil, errors.Is(err, nats.ErrNoResponders):
		return nil
	case ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
		t.log.Warn("named cursor: the connection holding it did not answer; taking it over anyway", "consumer", consumer)
		return nil
	}
	return err
}

// hold makes c the holder of its name in this process.
func (t *takeovers) hold(c *Cursor) error {
	subject := t.prefix + c.consumer
	ns, err := t.nc.ChanSubscribe(subject, t.ch)
	if err != nil {
		return err
	}
	c.notices = ns
	t.mu.Lock()
	old := t.held[subject]
	t.held[subject] = c
	t.mu.Unlock()
	if old != nil {
		// Both asked before either held the name.
		go old.takenOver()
	}
	return nil
}

// release ends c's hold; a newer holder of the name keeps it.
func (t *takeovers) release(c *Cursor) {
	if c.notices == nil {
		return
	}
	_ = c.notices.Unsubscribe()
	subject := t.prefix + c.consumer
	t.mu.Lock()
	if t.held[subject] == c {
		delete(t.held, subject)
	}
	t.mu.Unlock()
}

// run answers takeover requests until ctx ends.
func (t *takeovers) run(ctx context.Context) {
	for {
		select {
		case m := <-t.ch:
			t.mu.Lock()
			c := t.held[m.Subject]
			t.mu.Unlock()
			if c == nil {
				_ = m.Respond(nil) // it has just ended and saved its position
				continue
			}
			go func() {
				c.takenOver()
				_ = m.Respond(nil)
			}()
		case <-ctx.Done():
			return
		}
	}
}

// takenOver ends c's stream after a final flush (cutting the connection if
// that takes longer than takeoverGrace) and returns once c's position is
// saved.
func (c *Cursor) takenOver() {
	c.stop()
	grace := time.NewTimer(takeoverGrace)
	defer grace.Stop()
	select {
	case <-c.done:
		return
	case <-grace.C:
	}
	c.abort()
	select {
	case <-c.done:
	case <-time.After(takeoverWait):
	}
}
