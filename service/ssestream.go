package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/natsse/natsse/service/access"
	"github.com/natsse/natsse/service/cursors"
	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/heartbeat"
)

// errStopped ends a stream on purpose (shutdown, stream age), after a flush.
var errStopped = errors.New("service: stream stopped")

// writeError marks a failed write to the client, where the write happens:
// the stream is over, unlike after a NATS error, after which a replay is
// tried again.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// ringBudget bounds the ring frames scanned per lock hold, so a resuming
// client never stalls dispatch for long.
const ringBudget = 1024

// sseDeps is what every SSE stream of a served stream works with, made
// once per served stream and shared (one pointer per SSE stream): the
// served stream's rooms, the heartbeat clock, the metrics and the settings
// of a stream's writes.
type sseDeps struct {
	src     *servedStream
	clock   *heartbeat.Clock
	metrics *metrics
	log     *slog.Logger
	// writeTimeout cuts off a client that takes no write (Config); a replay
	// waits at most replayWait for a slot.
	writeTimeout, replayWait time.Duration
	// queueBytes bounds a stream's queue and every batch it writes (catch-up
	// and replay too): what a client that stopped reading pins while its
	// write blocks (docs/operations.md, "Limits").
	queueBytes int
}

// sseStream is one open SSE response: the connection's only goroutine
// writes to it, so writes need no lock. It gets everything it works with
// when it is made, and reaches nothing else.
type sseStream struct {
	*sseDeps

	sub      *fanout.Subscriber
	envelope bool
	grant    access.Grant    // what the token allows; zero without access control
	cursor   *cursors.Cursor // a named cursor's position (?durable=); nil without one
	remote   string
	shard    uint32     // heartbeat shard
	client   netip.Addr // what per-client limits count (see clientAddr)
	abort    func()     // ends a blocked write; set and read under registry.mu
	release  func()     // ends its share in keeping the upstream running (upstream.Reader.Want)

	out        sink
	pos        uint64     // every wanted message up to pos has been written
	check      bool       // pos came from the client: compare it with the stream first
	since      *time.Time // start from a time instead of pos
	began      time.Time  // when the request arrived
	note       *reqNote   // its debug line (nil unless natsse logs at debug)
	wrote      bool       // something was written since the last heartbeat tick
	deadlineAt time.Time  // the write deadline armed last
	spare      []*fanout.Frame
}

func (s *Server) newSSEStream(r *http.Request, req request, grant access.Grant, st *servedStream) *sseStream {
	return &sseStream{
		sseDeps: st.deps,
		sub:     fanout.NewSubscriber(req.patterns, s.cfg.QueueEvents, s.cfg.QueueBytes), envelope: req.envelope, grant: grant,
		remote: r.RemoteAddr, shard: s.clock.Shard(), client: s.clientAddr(r),
		since: req.since, began: time.Now(),
	}
}

func (ss *sseStream) LogValue() slog.Value {
	return slog.GroupValue(slog.String("remote", ss.remote), slog.Any("subjects", ss.sub.Patterns()))
}

// endReason labels why a stream ended, for natsse_streams_ended_total: a
// rising write_timeout count means clients that stop reading (or a server
// that cannot keep up with them).
func endReason(err error) string {
	var we writeError
	switch {
	case err == nil || errors.Is(err, errStopped):
		return "stopped"
	case errors.Is(err, errReplayBusy):
		return "replay_busy"
	case errors.Is(err, context.Canceled):
		return "client_closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "write_timeout"
	case errors.As(err, &we):
		return "write_error"
	default:
		return "other"
	}
}

// write hands b to the sink, and flush sends what it holds: the only two
// places where a write to the client can fail, marked as such.
func (ss *sseStream) write(b []byte) error {
	if err := ss.out.write(b); err != nil {
		return writeError{err}
	}
	return nil
}

func (ss *sseStream) flush() error {
	ss.wrote = true
	reachable := ss.cursor.Reachable() && !ss.out.peerClosed()
	if err := ss.out.flush(); err != nil {
		return writeError{err}
	}
	if reachable {
		ss.delivered()
	}
	return nil
}

// writeFrames writes frames after pos in one go and flushes once.
func (ss *sseStream) writeFrames(frames []*fanout.Frame) error {
	if len(frames) == 0 {
		return nil
	}
	ss.deadline()
	written := 0
	for _, f := range frames {
		if f.Seq <= ss.pos {
			continue
		}
		if err := ss.write(f.Bytes(ss.envelope)); err != nil {
			return err
		}
		ss.pos = f.Seq
		written++
	}
	ss.metrics.delivered.Add(float64(written))
	return ss.flush()
}

// writeRaw writes natsse's own lines (retry, reset, heartbeat).
func (ss *sseStream) writeRaw(b []byte) error {
	ss.deadline()
	if err := ss.write(b); err != nil {
		return err
	}
	return ss.flush()
}

// delivered tells the named cursor, if any, that everything up to pos has
// reached the client's connection, once pos is a position the stream checked.
func (ss *sseStream) delivered() {
	if !ss.check && ss.since == nil {
		ss.cursor.Delivered(ss.pos)
	}
}

// deadline arms the write deadline for the next write. Moving a deadline
// costs a timer update, so a deadline with more than three quarters of
// the timeout left is kept (it was the second-largest cost after writev in
// the S8 profile): a client that takes nothing is cut off after between
// 3/4 and all of the write timeout.
func (ss *sseStream) deadline() {
	now := time.Now()
	if ss.deadlineAt.Sub(now) > ss.writeTimeout*3/4 {
		return
	}
	ss.deadlineAt = now.Add(ss.writeTimeout)
	ss.out.setDeadline(ss.deadlineAt)
}

// heartbeat writes a comment on the second tick without a write: ticks
// come every third of the interval, so no stream is silent longer than two
// thirds of it.
func (ss *sseStream) heartbeat() error {
	if ss.wrote {
		ss.wrote = false
		return nil
	}
	return ss.writeRaw(fanout.Heartbeat)
}

// run serves the stream until the client leaves or the server ends it:
// catch up (ring, else JetStream), go live, and catch up again whenever the
// client fell too far behind to stay live.
func (ss *sseStream) run(ctx context.Context, live bool) error {
	defer ss.src.core.Detach(ss.sub)
	for {
		if !live {
			if err := ss.catchUp(ctx); err != nil {
				return err
			}
		}
		live = false
		if err := ss.live(ctx); err != nil {
			return err
		}
	}
}

// catchUp writes everything after pos until the subscriber is live.
func (ss *sseStream) catchUp(ctx context.Context) error {
	if ss.check {
		if err := ss.retry(ctx, ss.checkPosition); err != nil {
			return err
		}
		ss.cursor.Claimed(ss.pos)
	}
	for {
		if err := ss.stopped(ctx); err != nil {
			return err
		}
		var frames []*fanout.Frame
		var next uint64
		attached, ok := false, false
		if ss.since == nil {
			frames, next, attached, ok = ss.src.core.CatchUp(ss.sub, ss.pos, ss.spare[:0], ringBudget, ss.queueBytes)
		}
		if !ok {
			if err := ss.replay(ctx); err != nil {
				return err
			}
			continue
		}
		err := ss.writeFrames(frames)
		clear(frames)
		ss.spare = frames[:0]
		if err != nil {
			return err
		}
		ss.pos = max(ss.pos, next)
		if attached {
			return nil
		}
	}
}

// live writes what the core queues until the client fell behind (nil:
// catch up again) or the stream ends.
func (ss *sseStream) live(ctx context.Context) error {
	for {
		select {
		case <-ss.sub.Wake():
			frames, detached := ss.sub.Take(ss.spare)
			var oldest time.Time
			if len(frames) > 0 {
				oldest = frames[0].Stored()
			}
			err := ss.writeFrames(frames)
			if err == nil && !oldest.IsZero() {
				ss.metrics.latency.Observe(time.Since(oldest).Seconds())
			}
			clear(frames)
			ss.spare = frames[:0]
			if err != nil {
				return err
			}
			if detached {
				return nil
			}
		case <-ss.clock.Tick(ss.shard):
			if err := ss.heartbeat(); err != nil {
				return err
			}
		case <-ss.sub.Stopped():
			frames, _ := ss.sub.Take(nil)
			if err := ss.writeFrames(frames); err != nil {
				return err
			}
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopped reports why the stream must end, if it must.
func (ss *sseStream) stopped(ctx context.Context) error {
	select {
	case <-ss.sub.Stopped():
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}

// wait pauses for d while keeping the stream alive with heartbeats.
func (ss *sseStream) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	return waitFor(ctx, ss, t.C, nil)
}

// waitFor waits until ch delivers or is closed, or until (nil: never)
// fires, keeping the stream alive with heartbeats; the stream's end or a
// failed heartbeat ends the wait.
func waitFor[T any](ctx context.Context, ss *sseStream, ch <-chan T, until <-chan time.Time) error {
	for {
		select {
		case <-ch:
			return nil
		case <-until:
			return nil
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

// watchExpiry ends ss after a final flush once its token is no longer
// accepted (exp plus the leeway: a reconnect with it then gets 401, so the
// client does not loop on a token natsse still takes). expired reports
// whether that is why ss ended; stop ends the watch.
func watchExpiry(ss *sseStream) (expired func() bool, stop func()) {
	if ss.grant.End.IsZero() {
		return func() bool { return false }, func() {}
	}
	var fired atomic.Bool
	t := time.AfterFunc(time.Until(ss.grant.End), func() {
		fired.Store(true)
		ss.sub.Close()
	})
	return fired.Load, func() { t.Stop() }
}
