package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replay consumers prefetch this many messages; it bounds a replay's memory.
const replayPrefetch = 256

// flushEvery bounds how many replayed events wait in the buffer unflushed.
const flushEvery = 256

// writeError marks a failed write to the client: the stream is over, unlike
// a NATS error, after which the replay is tried again.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// replay brings the stream from pos up to the hub's head through JetStream,
// with a short-lived consumer per attempt. Streams on the same subjects
// share what they read through the replay cache: one reads, the others
// follow from memory.
func (st *stream) replay(ctx context.Context) error {
	h := st.srv.hub
	head := h.head()
	if st.since != nil || head <= st.pos {
		return st.replayOwn(ctx, nil)
	}
	key := filterKey(st.replayFilters())
	for st.pos < head {
		frames, next, wait, read := h.replays.lookup(key, st.pos, st.spare[:0], ringBudget)
		switch {
		case read != nil:
			err := st.replayOwn(ctx, read)
			h.replays.release(read)
			if err != nil {
				return err
			}
		case wait != nil:
			if err := waitFor(ctx, st, wait); err != nil {
				return err
			}
		default:
			err := st.writeFrames(frames)
			clear(frames)
			st.spare = frames[:0]
			if err != nil {
				return writeError{err}
			}
			st.pos = max(st.pos, next)
			st.srv.metrics.replayShared.Add(float64(len(frames)))
		}
	}
	return nil
}

// replayOwn reads from JetStream with a consumer of the stream's own; with
// a run, what it reads is shared through the cache.
func (st *stream) replayOwn(ctx context.Context, run *replayRun) error {
	if err := st.acquireReplay(ctx); err != nil {
		return err
	}
	defer func() { <-st.srv.hub.replaySlots }()
	st.srv.metrics.replays.Inc()
	return st.retry(ctx, func(ctx context.Context) error { return st.replayOnce(ctx, run) })
}

// retry runs fn until it succeeds. While NATS is unreachable the stream stays
// open with heartbeats and the client loses nothing; a failed write or the
// end of the stream ends it.
func (st *stream) retry(ctx context.Context, fn func(context.Context) error) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var we writeError
		if errors.As(err, &we) || errors.Is(err, errStopped) || errors.Is(err, errReplayBusy) || ctx.Err() != nil {
			return err
		}
		st.srv.log.Debug("waiting for NATS", "sub", st.sub, "pos", st.pos, "err", err)
		if err := st.wait(ctx, backoff); err != nil {
			return err
		}
	}
}

// errReplayBusy ends a stream that waited ReplayWait for a replay slot: it
// gets a retry line and is closed, the soft refusal (docs/protocol.md, "The soft refusal").
var errReplayBusy = errors.New("service: replay capacity exhausted")

// acquireReplay waits for a replay slot with the stream open, at most
// ReplayWait.
func (st *stream) acquireReplay(ctx context.Context) error {
	busy := time.NewTimer(st.srv.cfg.ReplayWait)
	defer busy.Stop()
	for {
		select {
		case st.srv.hub.replaySlots <- struct{}{}:
			return nil
		case <-busy.C:
			return errReplayBusy
		case <-st.srv.hub.heartbeat(st.sub.shard):
			if err := st.heartbeat(); err != nil {
				return writeError{err}
			}
		case <-st.sub.stop:
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// replayOnce reads everything the stream holds after pos that the client
// wants. It ends at a message with nothing pending after it: by then the
// stream has moved at least to the hub's head as read before starting, so
// every wanted message up to max(that head, last written) has been written.
//
// With a run, every flush also hands what was written to the run, and the
// replay stops early when another run already holds the position.
func (st *stream) replayOnce(ctx context.Context, run *replayRun) error {
	h := st.srv.hub
	head := h.head()
	cons, err := st.replayConsumer(ctx)
	if err != nil {
		return err
	}
	defer st.deleteConsumer(cons)
	var shared []*frame
	share := func() {
		if run != nil {
			h.replays.extend(run, shared, st.pos)
			clear(shared)
			shared = shared[:0]
		}
	}
	defer share()
	if cons.CachedInfo().NumPending == 0 {
		st.pos = max(st.pos, head)
		st.since = nil
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayPrefetch))
	if err != nil {
		return err
	}
	msgs, stop := pump(it)
	defer stop()

	unflushed := 0
	for {
		select {
		case n, open := <-msgs:
			if !open || n.err != nil {
				return errors.Join(st.flushIf(unflushed), fmt.Errorf("replay: %w", n.err))
			}
			meta, err := n.msg.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > st.pos && matchesAny(st.sub.patterns, n.msg.Subject()) {
				if unflushed == 0 {
					st.deadline()
				}
				f := newFrame(meta.Sequence.Stream, n.msg.Subject(), meta.Timestamp, n.msg.Headers(), n.msg.Data())
				if err := st.out.write(f.bytes(st.sub.envelope)); err != nil {
					return writeError{err}
				}
				st.pos = f.seq
				unflushed++
				st.srv.metrics.delivered.Inc()
				if run != nil {
					shared = append(shared, f)
				}
			}
			st.since = nil
			if meta.NumPending == 0 {
				st.pos = max(st.pos, meta.Sequence.Stream, head)
			}
			if meta.NumPending == 0 || unflushed >= flushEvery {
				err := st.flushIf(unflushed)
				share()
				if err != nil {
					return err
				}
				unflushed = 0
				if run != nil && meta.NumPending > 0 && h.replays.coveredElsewhere(run, st.pos) {
					return nil
				}
			}
			if meta.NumPending == 0 {
				return nil
			}
		case <-h.heartbeat(st.sub.shard):
			if unflushed == 0 {
				if err := st.heartbeat(); err != nil {
					return writeError{err}
				}
			}
		case <-st.sub.stop:
			if err := st.flushIf(unflushed); err != nil {
				return err
			}
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (st *stream) flushIf(unflushed int) error {
	if unflushed == 0 {
		return nil
	}
	if err := st.flush(); err != nil {
		return writeError{err}
	}
	return nil
}

// replayConsumer creates an ephemeral, unacknowledged, in-memory consumer
// starting after pos (or at since, before anything was written).
func (st *stream) replayConsumer(ctx context.Context) (jetstream.Consumer, error) {
	h := st.srv.hub
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 30 * time.Second,
		FilterSubjects:    st.replayFilters(),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       st.pos + 1,
	}
	if st.since != nil {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, st.since
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return h.js.CreateConsumer(ctx, h.cfg.Stream, cfg)
}

func (st *stream) replayFilters() []string {
	if f := filtersFor(st.sub.patterns); f != nil {
		return f
	}
	if s := st.srv.hub.state.Load(); s != nil {
		return s.filters
	}
	return nil
}

func (st *stream) deleteConsumer(cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = st.srv.hub.js.DeleteConsumer(ctx, st.srv.cfg.Stream, cons.CachedInfo().Name)
}

// checkPosition compares the requested position with the stream's first
// and last sequence, and sends a reset when the position is gone (docs/protocol.md,
// "Reset"): it moves pos to where the client can continue.
func (st *stream) checkPosition(ctx context.Context) error {
	first, last, err := st.srv.hub.bounds(ctx, st.began)
	if err != nil {
		return err
	}
	st.check = false
	requested := st.pos
	switch {
	case requested > last:
		st.pos = last
	case requested+1 < first:
		st.pos = first - 1
	default:
		return nil
	}
	st.srv.metrics.resets.Inc()
	if err := st.writeRaw(resetEvent(st.pos, requested, first)); err != nil {
		return writeError{err}
	}
	return nil
}

// next is one step of a consumer's message iterator.
type next struct {
	msg jetstream.Msg
	err error
}

// pump turns the blocking iterator into a channel so a replay can send
// heartbeats and notice shutdown while it waits. stop ends the goroutine.
func pump(it jetstream.MessagesContext) (<-chan next, func()) {
	ch := make(chan next)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			select {
			case ch <- next{m, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch, func() {
		it.Stop()
		close(done)
		for range ch {
		}
	}
}
