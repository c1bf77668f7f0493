package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/resume"
	"github.com/natsse/natsse/subjects"
)

// flushEvery bounds how many replayed events wait in the buffer unflushed;
// queueBytes bounds their bytes.
const flushEvery = 256

// replayBatch bounds the messages a replay's consumer asks for at once
// (its channel in nats.go: 78 KiB). nats.go's default of 500 made the S6
// resume storm of BENCHMARKS.md take minutes instead of 3 s.
const replayBatch = 10_000

// replay brings the stream from pos up to the core's head through JetStream,
// with a short-lived consumer per attempt. Streams on the same subjects
// share what they read through the replay cache: one reads, the others
// follow from memory.
func (ss *sseStream) replay(ctx context.Context) error {
	cache := ss.src.resumer.Cache()
	head := ss.src.core.Head()
	if ss.since != nil || head <= ss.pos {
		return ss.replayOwn(ctx, nil)
	}
	key := resume.FilterKey(ss.replayFilters())
	for ss.pos < head {
		frames, next, wait, read := cache.Lookup(key, ss.pos, ss.spare[:0], ringBudget, ss.queueBytes)
		switch {
		case read != nil:
			err := ss.replayOwn(ctx, read)
			cache.Release(read)
			if err != nil {
				return err
			}
		case wait != nil:
			// Back after ReaderStall at the latest: the reader may be stuck
			// writing to a client that stopped reading.
			stall := time.NewTimer(resume.ReaderStall)
			err := waitFor(ctx, ss, wait, stall.C)
			stall.Stop()
			if err != nil {
				return err
			}
		default:
			err := ss.writeFrames(frames)
			clear(frames)
			ss.spare = frames[:0]
			if err != nil {
				return err
			}
			ss.pos = max(ss.pos, next)
			ss.metrics.replayShared.Add(float64(len(frames)))
		}
	}
	return nil
}

// replayOwn reads from JetStream with a consumer of the stream's own; with
// a run, what it reads is shared through the cache.
func (ss *sseStream) replayOwn(ctx context.Context, run *resume.Run) error {
	if err := ss.acquireReplay(ctx); err != nil {
		return err
	}
	defer ss.src.resumer.Release()
	ss.metrics.replays.Inc()
	return ss.retry(ctx, func(ctx context.Context) error { return ss.replayOnce(ctx, run) })
}

// retry runs fn until it succeeds. While NATS is unreachable the stream stays
// open with heartbeats and the client loses nothing; a failed write or the
// end of the stream ends it.
func (ss *sseStream) retry(ctx context.Context, fn func(context.Context) error) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var we writeError
		if errors.As(err, &we) || errors.Is(err, errStopped) || errors.Is(err, errReplayBusy) || ctx.Err() != nil {
			return err
		}
		ss.log.Debug("waiting for NATS", "stream", ss, "pos", ss.pos, "err", err)
		if err := ss.wait(ctx, backoff); err != nil {
			return err
		}
	}
}

// errReplayBusy ends a stream that waited ReplayWait for a replay slot: it
// gets a retry line and is closed, the soft refusal (docs/protocol.md, "The soft refusal").
var errReplayBusy = errors.New("service: replay capacity exhausted")

// acquireReplay waits for a replay slot with the stream open, at most
// ReplayWait.
func (ss *sseStream) acquireReplay(ctx context.Context) error {
	busy := time.NewTimer(ss.replayWait)
	defer busy.Stop()
	for {
		select {
		case ss.src.resumer.Slots() <- struct{}{}:
			return nil
		case <-busy.C:
			return errReplayBusy
		case <-ss.clock.Tick(ss.shard):
			if err := ss.heartbeat(); err != nil {
				return err
			}
		case <-ss.sub.Stopped():
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// replayOnce reads everything the stream holds after pos that the client
// wants. It ends at a message with nothing pending after it: by then the
// stream has moved at least to the core's head as read before starting, so
// every wanted message up to max(that head, last written) has been written.
//
// With a run, every flush also hands what was written to the run, and the
// replay stops early when another run already holds the position.
func (ss *sseStream) replayOnce(ctx context.Context, run *resume.Run) error {
	res := ss.src.resumer
	head := ss.src.core.Head()
	cons, err := res.Consumer(ctx, ss.replayFilters(), ss.pos, ss.since)
	if err != nil {
		return err
	}
	defer res.Delete(cons)
	var shared []*fanout.Frame
	share := func() {
		if run != nil {
			res.Cache().Extend(run, shared, ss.pos)
			clear(shared)
			shared = shared[:0]
		}
	}
	defer share()
	if cons.CachedInfo().NumPending == 0 {
		ss.pos = max(ss.pos, head)
		ss.since = nil
		return nil
	}
	// Messages and bytes both bounded: with a byte bound alone nats.go asks
	// for up to 1,000,000 messages and makes its buffer channel that long,
	// 7.6 MiB per replay before any message (docs/operations.md, "Limits").
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(replayBatch, res.Prefetch(ss.queueBytes)))
	if err != nil {
		return err
	}
	msgs, stop := pump(it)
	defer stop()

	unflushed, unflushedBytes := 0, 0
	for {
		select {
		case n, open := <-msgs:
			if !open || n.err != nil {
				return errors.Join(ss.flushIf(unflushed), fmt.Errorf("replay: %w", n.err))
			}
			meta, err := n.msg.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > ss.pos && subjects.MatchAny(ss.sub.Patterns(), n.msg.Subject()) {
				if unflushed == 0 {
					ss.deadline()
					if run != nil {
						res.Cache().Writing(run, true)
					}
				}
				f := fanout.NewFrame(meta.Sequence.Stream, n.msg.Subject(), meta.Timestamp, n.msg.Headers(), n.msg.Data())
				if err := ss.write(f.Bytes(ss.envelope)); err != nil {
					return err
				}
				ss.pos = f.Seq
				unflushed++
				unflushedBytes += f.Size()
				ss.metrics.delivered.Inc()
				if run != nil {
					shared = append(shared, f)
				}
			}
			ss.since = nil
			if meta.NumPending == 0 {
				ss.pos = max(ss.pos, meta.Sequence.Stream, head)
			}
			if meta.NumPending == 0 || unflushed >= flushEvery || unflushedBytes >= ss.queueBytes {
				// Shared before the flush: the streams following this one
				// need not wait for its client.
				share()
				err := ss.flushIf(unflushed)
				if run != nil {
					res.Cache().Writing(run, false)
				}
				if err != nil {
					return err
				}
				unflushed, unflushedBytes = 0, 0
				if run != nil && meta.NumPending > 0 && res.Cache().CoveredElsewhere(run, ss.pos) {
					return nil
				}
			}
			if meta.NumPending == 0 {
				return nil
			}
		case <-ss.clock.Tick(ss.shard):
			if unflushed == 0 {
				if err := ss.heartbeat(); err != nil {
					return err
				}
			}
		case <-ss.sub.Stopped():
			if err := ss.flushIf(unflushed); err != nil {
				return err
			}
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (ss *sseStream) flushIf(unflushed int) error {
	if unflushed == 0 {
		return nil
	}
	return ss.flush()
}

// replayFilters are the stream's own filters, or everything served when its
// patterns overlap.
func (ss *sseStream) replayFilters() []string {
	if f := subjects.Filters(ss.sub.Patterns()); f != nil {
		return f
	}
	return ss.src.filters()
}

// checkPosition compares the requested position with the stream's first
// and last sequence, and sends a reset when the position is gone (docs/protocol.md,
// "Reset"): it moves pos to where the client can continue.
func (ss *sseStream) checkPosition(ctx context.Context) error {
	first, last, err := ss.src.resumer.Bounds(ctx, ss.began)
	if err != nil {
		return err
	}
	ss.check = false
	requested := ss.pos
	switch {
	case requested > last:
		ss.pos = last
	case requested+1 < first:
		ss.pos = first - 1
	default:
		return nil
	}
	ss.metrics.resets.Inc()
	return ss.writeRaw(fanout.ResetEvent(ss.pos, requested, first))
}

// step is one step of a consumer's message iterator.
type step struct {
	msg jetstream.Msg
	err error
}

// pump turns the blocking iterator into a channel so a replay can send
// heartbeats and notice shutdown while it waits. stop ends the goroutine.
func pump(it jetstream.MessagesContext) (<-chan step, func()) {
	ch := make(chan step)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			m, err := it.Next()
			select {
			case ch <- step{m, err}:
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
