package cursors

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A Cursor keeps a named cursor's position in its durable consumer while a
// stream serves it. The events themselves reach the client the usual way
// (ring, replay, live): the consumer only stores the position, as its ack
// floor, which a later connection with the same name starts from.
//
// How the position moves, and why this way:
//
//   - At start (once the stream's position is known: after a reset event, a
//     since, or the client's own Last-Event-ID) the consumer is reset to it
//     (ResetConsumerToSequence, nats-server 2.14+): ack floor = position, and
//     nothing pending from an earlier connection. This one API call is also
//     how an explicit Last-Event-ID moves the stored position, backwards too.
//   - While the stream runs, the consumer delivers headers-only copies of the
//     cursor's messages (one pull subscription, at most cursorMaxAckPending
//     unacked), and after each successful flush the cursor acks the newest
//     copy at or below the flushed position. The consumer acks all below
//     (AckAll), so that is one ack per flushed batch, a plain publish, never
//     one per event and never a request on the write path. A copy that
//     arrives after its event was flushed is acked on arrival. Acks and the
//     waiting pulls are also what keeps the consumer from expiring
//     (InactiveThreshold) while a client is connected.
//   - When the stream ends (client gone, takeover, shutdown), the consumer is
//     reset once more to exactly the last flushed position: the copies may
//     lag the events, and the reset waits for the server, so a takeover that
//     reads the position next sees exactly where this connection stopped.
//
// So the next connection gets every event after the last one flushed to a
// connection that was still open, exactly once; only a crash of natsse itself
// (kill -9) can leave the floor a few acks behind, and then those events are
// sent again (at least once). Resetting on every flush instead would be exact
// even then, but costs a JetStream API request (and a consumer info) per
// flush; fetching the events themselves through the consumer instead of the
// ring would cost a full copy per event and lose the shared fan-out.
//
// A wider filter than the client's patterns (overlapping patterns) is still
// exact: every wanted message up to the position was flushed, so acking the
// newest copy at or below it never skips a wanted message.
type Cursor struct {
	cs       *Cursors
	name     string // as the client gave it
	consumer string // the durable consumer's name
	cons     jetstream.Consumer
	stop     func()             // ends the SSE stream after a final flush
	abort    func()             // cuts its connection
	notices  *nats.Subscription // takeover requests for this name

	ctx         context.Context // the stream's: done once the client hung up
	seat        chan struct{}   // closed when the first position is known
	keepCtx     context.Context
	stopKeeping context.CancelFunc
	kept        sync.WaitGroup
	done        chan struct{} // closed once the last position is saved

	mu    sync.Mutex
	known bool      // acked is a position the client reached
	acked uint64    // every wanted message up to here was flushed to the client
	held  []heldMsg // copies above acked, oldest first, not acked yet
}

// heldMsg is a copy the consumer delivered before its event was flushed.
type heldMsg struct {
	seq uint64
	msg jetstream.Msg
}

const (
	// cursorAckWait is long enough that copies held for a slow client are
	// rarely sent again (a resent copy is harmless: acks cover all below).
	cursorAckWait = time.Minute
	// cursorMaxAckPending bounds the copies a cursor holds for a client that
	// is behind; the consumer waits for acks beyond it.
	cursorMaxAckPending = 256
	// cursorPrefetch is the pull batch of the copies.
	cursorPrefetch = 64
	// cursorSaveTimeout bounds the position reset when a stream ends.
	cursorSaveTimeout = 5 * time.Second
)

func newCursor(cs *Cursors, name, consumer string, stop, abort func()) *Cursor {
	c := &Cursor{cs: cs, name: name, consumer: consumer, stop: stop, abort: abort, seat: make(chan struct{}), done: make(chan struct{})}
	c.keepCtx, c.stopKeeping = context.WithCancel(context.Background())
	return c
}

// Start begins keeping the position for the SSE stream that runs in ctx.
// Every method is a no-op on a nil Cursor (no named cursor).
func (c *Cursor) Start(ctx context.Context) {
	if c == nil {
		return
	}
	c.ctx = ctx
	c.kept.Go(c.keep)
}

// Reachable reports, before a flush, whether the client can still read what
// is flushed: not once it has hung up (the hangup watcher saw it; the
// caller also peeks for the end of the connection, which the watcher may
// not have caught yet), as a flush into a socket the client already left
// goes through all the same. A client that leaves after this check is one
// that left with events in socket buffers, which count as delivered
// (docs/protocol.md, "Named cursors").
func (c *Cursor) Reachable() bool { return c != nil && c.ctx.Err() == nil }

// Delivered records that every wanted message up to pos was flushed to the
// client. Called by the stream's goroutine after a flush.
func (c *Cursor) Delivered(pos uint64) {
	if c != nil {
		c.record(pos)
	}
}

// Claimed records the position the stream starts from once it was checked
// against the stream: the client's own Last-Event-ID moves the stored
// position there even if nothing follows it.
func (c *Cursor) Claimed(pos uint64) {
	if c != nil {
		c.record(pos)
	}
}

// record moves the position to pos and acks the newest copy at or below it.
func (c *Cursor) record(pos uint64) {
	c.mu.Lock()
	if c.known && pos <= c.acked {
		c.mu.Unlock()
		return
	}
	first := !c.known
	c.known, c.acked = true, pos
	ack := c.takeHeld(pos)
	c.mu.Unlock()
	if ack != nil {
		_ = ack.Ack()
	}
	if first {
		close(c.seat)
	}
}

// takeHeld removes the held copies up to pos and returns the newest of them.
func (c *Cursor) takeHeld(pos uint64) jetstream.Msg {
	n, _ := slices.BinarySearchFunc(c.held, pos+1, func(h heldMsg, seq uint64) int { return cmp.Compare(h.seq, seq) })
	if n == 0 {
		return nil
	}
	ack := c.held[n-1].msg
	c.held = slices.Delete(c.held, 0, n)
	return ack
}

// onCopy takes a copy from the consumer: acked at once when its event was
// already flushed, else held until it is.
func (c *Cursor) onCopy(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	seq := meta.Sequence.Stream
	c.mu.Lock()
	if c.known && seq <= c.acked {
		c.mu.Unlock()
		_ = m.Ack()
		return
	}
	if n := len(c.held); n == 0 || seq > c.held[n-1].seq {
		c.held = append(c.held, heldMsg{seq, m})
	} // else a copy sent again: the ack of a newer one covers it
	c.mu.Unlock()
}

// keep resets the consumer to the first known position, then takes its
// copies until the stream ends.
func (c *Cursor) keep() {
	select {
	case <-c.seat:
	case <-c.keepCtx.Done():
		return
	}
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		c.mu.Lock()
		pos := c.acked
		c.mu.Unlock()
		// Not cancelled by finish: a reset in flight must land before the
		// final one, which it could otherwise overtake.
		err := c.save(context.Background(), pos)
		if err == nil {
			break
		}
		c.cs.cfg.Log.Debug("named cursor: waiting to store the position", "consumer", c.consumer, "err", err)
		select {
		case <-time.After(backoff):
		case <-c.keepCtx.Done():
			return
		}
	}
	if c.keepCtx.Err() != nil {
		return
	}
	cc, err := c.cons.Consume(c.onCopy, jetstream.PullMaxMessages(cursorPrefetch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.cs.cfg.Log.Debug("named cursor", "consumer", c.consumer, "err", err)
		}))
	if err != nil {
		c.cs.cfg.Log.Warn("named cursor: position kept only when the stream ends", "consumer", c.consumer, "err", err)
		<-c.keepCtx.Done()
		return
	}
	<-c.keepCtx.Done()
	cc.Stop()
}

// save moves the consumer's ack floor to pos (and drops its pending copies).
func (c *Cursor) save(ctx context.Context, pos uint64) error {
	ctx, cancel := context.WithTimeout(ctx, cursorSaveTimeout)
	defer cancel()
	_, err := c.cs.js.ResetConsumerToSequence(ctx, c.cs.cfg.Stream, c.consumer, pos+1)
	return err
}

// Finish stores the last flushed position exactly, then lets a connection
// that takes the name over go on. Called once the stream has ended.
func (c *Cursor) Finish() {
	if c == nil {
		return
	}
	c.stopKeeping()
	c.kept.Wait()
	c.mu.Lock()
	known, pos := c.known, c.acked
	clear(c.held)
	c.held = nil
	c.mu.Unlock()
	if known {
		if err := c.save(context.Background(), pos); err != nil {
			c.cs.cfg.Log.Warn("named cursor: last position not saved; the next connection may repeat a few events", "consumer", c.consumer, "pos", pos, "err", err)
		}
	}
	c.cs.takeovers.release(c)
	close(c.done)
}
