package service

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// errStopped ends a stream on purpose (shutdown, stream age), after a flush.
var errStopped = errors.New("service: stream stopped")

// ringBudget bounds the ring frames scanned per lock hold, so a resuming
// client never stalls dispatch for long.
const ringBudget = 1024

// stream is one open SSE response: the connection's only goroutine writes
// to it, so writes need no lock.
type stream struct {
	srv        *Server
	out        sink
	sub        *subscriber
	pos        uint64     // every wanted message up to pos has been written
	check      bool       // pos came from the client: compare it with the stream first
	since      *time.Time // start from a time instead of pos
	began      time.Time  // when the request arrived
	wrote      bool       // something was written since the last heartbeat tick
	deadlineAt time.Time  // the write deadline armed last
	spare      []*frame
	auth       *claims // the verified token; nil when access control is off
	// cursor keeps a named cursor's position (?durable=); nil without one.
	cursor *cursor
}

// writeFrames writes frames after pos in one go and flushes once.
func (st *stream) writeFrames(frames []*frame) error {
	if len(frames) == 0 {
		return nil
	}
	st.deadline()
	written := 0
	for _, f := range frames {
		if f.seq <= st.pos {
			continue
		}
		if err := st.out.write(f.bytes(st.sub.envelope)); err != nil {
			return err
		}
		st.pos = f.seq
		written++
	}
	st.srv.metrics.delivered.Add(float64(written))
	return st.flush()
}

// writeRaw writes natsse's own lines (retry, reset, heartbeat).
func (st *stream) writeRaw(b []byte) error {
	st.deadline()
	if err := st.out.write(b); err != nil {
		return err
	}
	return st.flush()
}

func (st *stream) flush() error {
	st.wrote = true
	reachable := st.cursor.reachable(st.out)
	if err := st.out.flush(); err != nil {
		return err
	}
	if reachable {
		st.delivered()
	}
	return nil
}

// delivered tells the named cursor, if any, that everything up to pos has
// reached the client's connection, once pos is a position the stream checked.
func (st *stream) delivered() {
	if st.cursor != nil && !st.check && st.since == nil {
		st.cursor.delivered(st.pos)
	}
}

// deadline arms the write deadline for the next write. Moving a deadline
// costs a timer update, so a deadline with more than three quarters of
// the timeout left is kept (it was the second-largest cost after writev in
// the S8 profile): a client that takes nothing is cut off after between
// 3/4 and all of the write timeout.
func (st *stream) deadline() {
	now := time.Now()
	if st.deadlineAt.Sub(now) > st.srv.cfg.WriteTimeout*3/4 {
		return
	}
	st.deadlineAt = now.Add(st.srv.cfg.WriteTimeout)
	st.out.setDeadline(st.deadlineAt)
}

// heartbeat writes a comment on the second tick without a write: ticks
// come every third of the interval, so no stream is silent longer than two
// thirds of it.
func (st *stream) heartbeat() error {
	if st.wrote {
		st.wrote = false
		return nil
	}
	return st.writeRaw([]byte(":\n\n"))
}

func retryLine(d time.Duration) []byte {
	return []byte("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n\n")
}

// run serves the stream until the client leaves or the server ends it:
// catch up (ring, else JetStream), go live, and catch up again whenever the
// client fell too far behind to stay live.
func (st *stream) run(ctx context.Context, live bool) error {
	defer st.srv.hub.detach(st.sub)
	for {
		if !live {
			if err := st.catchUp(ctx); err != nil {
				return err
			}
		}
		live = false
		if err := st.live(ctx); err != nil {
			return err
		}
	}
}

// catchUp writes everything after pos until the subscriber is live.
func (st *stream) catchUp(ctx context.Context) error {
	if st.check {
		if err := st.retry(ctx, st.checkPosition); err != nil {
			return err
		}
		st.cursor.claimed(st.pos)
	}
	for {
		if err := st.stopped(ctx); err != nil {
			return err
		}
		var frames []*frame
		var next uint64
		attached, ok := false, false
		if st.since == nil {
			frames, next, attached, ok = st.srv.hub.catchUp(st.sub, st.pos, st.spare[:0], ringBudget)
		}
		if !ok {
			if err := st.replay(ctx); err != nil {
				return err
			}
			continue
		}
		err := st.writeFrames(frames)
		clear(frames)
		st.spare = frames[:0]
		if err != nil {
			return err
		}
		st.pos = max(st.pos, next)
		if attached {
			return nil
		}
	}
}

// live writes what the hub queues until the client fell behind (nil: catch
// up again) or the stream ends.
func (st *stream) live(ctx context.Context) error {
	for {
		select {
		case <-st.sub.wake:
			frames, detached := st.sub.take(st.spare)
			err := st.writeFrames(frames)
			clear(frames)
			st.spare = frames[:0]
			if err != nil {
				return err
			}
			if detached {
				return nil
			}
		case <-st.srv.hub.heartbeat(st.sub.shard):
			if err := st.heartbeat(); err != nil {
				return err
			}
		case <-st.sub.stop:
			frames, _ := st.sub.take(nil)
			if err := st.writeFrames(frames); err != nil {
				return err
			}
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopped reports why the stream must end, if it must.
func (st *stream) stopped(ctx context.Context) error {
	select {
	case <-st.sub.stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}

// wait pauses for d while keeping the stream alive with heartbeats.
func (st *stream) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	return waitFor(ctx, st, t.C)
}

// waitFor waits until ch delivers or is closed, keeping the stream alive
// with heartbeats; the stream's end or a failed heartbeat ends the wait.
func waitFor[T any](ctx context.Context, st *stream, ch <-chan T) error {
	for {
		select {
		case <-ch:
			return nil
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
