package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/subjects"
)

// hub is the process's one upstream: an ordered consumer on the served
// subjects whose messages are encoded once, kept in the ring and dispatched
// through the subject index to the live subscribers.
type hub struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex
	ring     *ring
	index    *subjects.Index[*subscriber]
	overflow []*subscriber // scratch for dispatch

	state atomic.Pointer[streamState] // nil until the stream was found
	ready atomic.Bool                 // stream reachable right now

	// gen numbers the upstream consumers, under mu: messages of a consumer
	// that was replaced are dropped, so that a stopped consumer still
	// delivering cannot repeat what its successor delivers.
	gen uint64
	// stuck says why the upstream cannot deliver through the NATS server
	// natsse is connected to (nil: it can); see watch.
	stuck atomic.Pointer[string]
	// failing is when the upstream consumer reported an error (missed
	// heartbeats, mostly) not followed by a message since (unix ns; 0:
	// none).
	failing atomic.Int64
	// backoff is how long a problem must last before natsse moves to
	// another server (only watch uses it).
	backoff time.Duration

	// ticks are the heartbeat channels, one per shard of the streams; each
	// is closed and replaced every third of the heartbeat interval, the
	// shards one after another, so that idle streams do not all write
	// their heartbeats in the same instant (S8 in BENCHMARKS.md).
	ticks     [heartbeatShards]atomic.Pointer[chan struct{}]
	nextShard atomic.Uint32

	replaySlots chan struct{}
	replays     *replayCache

	boundsMu       sync.Mutex
	boundsInflight *boundsCall

	started     chan struct{} // closed once the stream was found
	startedOnce sync.Once
	// created identifies the stream being served: a stream deleted and
	// created again under the same name starts its sequences over.
	created time.Time
	// recreated is called when that happened, after the upstream restarted:
	// the server closes every open stream, whose clients come back with
	// their Last-Event-ID and get a reset (docs/protocol.md, "Reset").
	recreated func()
}

// streamState is what the hub learned of the stream when it started.
type streamState struct {
	subjects []string // the stream's subjects
	served   []string // what HTTP may ask for
	filters  []string // upstream and replay filters (no overlaps; nil: all)
}

func newHub(cfg Config, nc *nats.Conn, m *metrics) (*hub, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("service: jetstream: %w", err)
	}
	h := &hub{
		cfg: cfg, nc: nc, js: js, log: cfg.Logger, metrics: m,
		index:       subjects.NewIndex[*subscriber](),
		replaySlots: make(chan struct{}, cfg.ReplayConcurrency),
		replays:     newReplayCache(cfg.ReplayCacheBytes),
		started:     make(chan struct{}),
		backoff:     moveAfter,
	}
	for i := range h.ticks {
		ch := make(chan struct{})
		h.ticks[i].Store(&ch)
	}
	return h, nil
}

// run finds (or creates) the stream, consumes it until ctx ends, and keeps
// readiness current. It returns when ctx is done.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { h.heartbeats(ctx) })
	defer wg.Wait()

	for ctx.Err() == nil {
		var cc jetstream.ConsumeContext
		for backoff := time.Duration(0); ; backoff = min(max(2*backoff, 250*time.Millisecond), 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if cc, err = h.start(ctx); err == nil {
				break
			}
			h.log.Warn("waiting for the stream", "stream", h.cfg.Stream, "err", err)
		}
		end := h.watch(ctx)
		// A consumer in the middle of a reset holds its lock until the
		// request it waits for times out (10s): don't wait for it. The
		// generation check in dispatch drops what it might still deliver.
		go cc.Stop()
		switch end {
		case upstreamRecreated:
			h.log.Warn("the stream was deleted and created again: its sequences start over; closing open streams so that clients resume from their positions", "stream", h.cfg.Stream)
		case upstreamStalled:
			h.log.Warn("the upstream consumer stopped delivering; starting it again from where it stopped", "stream", h.cfg.Stream)
		}
	}
}

// start looks up the stream and begins the upstream consumer at its end.
func (h *hub) start(ctx context.Context) (jetstream.ConsumeContext, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := h.stream(ctx)
	if err != nil {
		return nil, err
	}
	info := stream.CachedInfo()
	st := newStreamState(info.Config.Subjects, h.cfg.Subjects)

	// The same stream as before (the upstream is restarted after a move or
	// a stall) resumes after the last message the hub has: the ring and
	// the live subscribers carry on. A new stream starts at its end.
	h.mu.Lock()
	recreated := h.ring != nil && !info.Created.Equal(h.created)
	if h.ring == nil || recreated {
		h.ring = newRing(h.cfg.RingEvents, h.cfg.RingBytes, info.State.LastSeq)
		h.created = info.Created
	}
	if recreated {
		// Live subscribers hold positions of the old stream: take them off
		// the index; recreated closes their streams.
		h.index = subjects.NewIndex[*subscriber]()
	}
	h.gen++
	gen, next := h.gen, h.ring.head+1
	h.mu.Unlock()
	if recreated {
		h.replays.reset()
		if h.recreated != nil {
			h.recreated()
		}
	}

	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: st.filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    next,
		// One attempt per reset: a consumer retrying on its own holds its
		// lock (and Stop) for as long as it retries, while the hub starts a
		// fresh upstream anyway when this one keeps failing (watch).
		MaxResetAttempts: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream consumer: %w", err)
	}
	// Short pulls with 1 s heartbeats: the upstream consumer lives on one
	// server of the stream, and when that server goes away only missed
	// heartbeats tell; with the defaults live delivery paused ~10 s
	// (TestClusterUpstreamHostLoss), now ~2 s.
	h.failing.Store(0)
	cc, err := cons.Consume(func(m jetstream.Msg) { h.onMessage(gen, m) }, jetstream.PullExpiry(upstreamExpiry), jetstream.PullHeartbeat(upstreamHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			h.log.Debug("upstream", "err", err)
			h.mu.Lock()
			if gen == h.gen {
				h.failing.CompareAndSwap(0, time.Now().UnixNano())
			}
			h.mu.Unlock()
		}))
	if err != nil {
		return nil, fmt.Errorf("upstream consume: %w", err)
	}
	h.state.Store(st)
	h.stuck.Store(nil)
	h.ready.Store(true)
	h.startedOnce.Do(func() { close(h.started) })
	h.log.Info("serving stream", "stream", h.cfg.Stream, "subjects", st.served, "from_seq", next, "nats_server", h.nc.ConnectedServerName())
	return cc, nil
}

// stream returns the stream, creating it when configured to.
func (h *hub) stream(ctx context.Context) (jetstream.Stream, error) {
	stream, err := h.js.Stream(ctx, h.cfg.Stream)
	if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) || !h.cfg.StreamCreate {
		return stream, err
	}
	stream, err = h.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:         h.cfg.Stream,
		Subjects:     h.cfg.StreamSubjects,
		Storage:      jetstream.FileStorage,
		MaxAge:       h.cfg.StreamMaxAge,
		MaxBytes:     h.cfg.StreamMaxBytes,
		Replicas:     h.cfg.StreamReplicas,
		MaxConsumers: h.cfg.StreamMaxConsumers,
	})
	if err == nil {
		h.log.Info("created stream", "stream", h.cfg.Stream, "subjects", h.cfg.StreamSubjects)
	}
	return stream, err
}

// upstreamEnd is why watch returned: what the upstream must do next.
type upstreamEnd int

const (
	upstreamDone      upstreamEnd = iota // ctx ended
	upstreamRecreated                    // the stream was deleted and created again: start over
	upstreamStalled                      // the consumer stopped delivering: start it again
	upstreamMoved                        // natsse moved to another NATS server: start it there
)

// How fast the upstream notices that it cannot deliver: the stream is
// checked every watchEvery; a problem that lasts moveAfter makes natsse
// move to another NATS server (or restart a stalled consumer), and each
// move that does not help doubles the wait, up to moveAfterMax, so that a
// cluster down as a whole is not hammered.
const (
	watchEvery   = time.Second
	watchTimeout = 2 * time.Second
	moveAfter    = 3 * time.Second
	moveAfterMax = 30 * time.Second
	// peerSilence: a stream leader that has heard nothing from a replica
	// for longer (Raft heartbeats are every second) has lost that replica.
	peerSilence = 3 * time.Second
)

// watch keeps readiness current and notices an upstream that cannot
// deliver. A server cut off from the rest of its cluster still answers for
// the stream (itself, once its replica has no leader) while nothing new
// reaches it, and a half-dead connection answers nothing: either way natsse
// moves to another server of the pool instead of waiting for the partition
// to heal. It returns what the upstream must do next.
func (h *hub) watch(ctx context.Context) upstreamEnd {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var badSince time.Time // first failed check on this server
	for {
		select {
		case <-ctx.Done():
			return upstreamDone
		case <-t.C:
		}
		if !h.nc.IsConnected() {
			// nats.go is reconnecting; the new server gets checked afresh.
			h.ready.Store(false)
			h.setStuck("NATS connection lost; reconnecting")
			badSince = time.Time{}
			continue
		}
		c, cancel := context.WithTimeout(ctx, watchTimeout)
		stream, err := h.stream(c)
		cancel()
		problem := ""
		switch {
		case err != nil:
			problem = fmt.Sprintf("NATS server %s does not answer for the stream: %v", h.nc.ConnectedServerName(), err)
			if h.ready.Load() {
				h.log.Warn("stream unreachable", "stream", h.cfg.Stream, "err", err)
			}
		case !stream.CachedInfo().Created.Equal(h.created):
			h.ready.Store(false)
			return upstreamRecreated
		default:
			if p := servingProblem(stream.CachedInfo(), peerSilence); p != "" {
				problem = fmt.Sprintf("NATS server %s cannot serve the stream: %s", h.nc.ConnectedServerName(), p)
			}
		}
		if err == nil && !h.ready.Load() {
			h.log.Info("stream reachable again", "stream", h.cfg.Stream)
		}
		h.ready.Store(err == nil)

		now := time.Now()
		if problem == "" {
			badSince = time.Time{}
			h.backoff = moveAfter
		} else if badSince.IsZero() {
			badSince = now
		}
		if problem == "" {
			if f := h.failing.Load(); f != 0 {
				problem = "the upstream consumer stopped delivering (missed heartbeats)"
				if now.Sub(time.Unix(0, f)) >= moveAfter {
					h.setStuck(problem)
					return upstreamStalled
				}
			}
		}
		h.setStuck(problem)
		if !badSince.IsZero() && now.Sub(badSince) >= h.backoff && len(h.nc.Servers()) > 1 {
			from := h.nc.ConnectedServerName()
			if err := h.nc.ForceReconnect(); err == nil {
				h.log.Warn("moving to another NATS server", "from", from, "why", problem, "next_move_after", min(2*h.backoff, moveAfterMax).String())
				h.backoff = min(2*h.backoff, moveAfterMax)
				return upstreamMoved
			}
		}
	}
}

// servingProblem says why the stream, as the server natsse is connected
// to reports it, cannot deliver anything new through that server ("" when
// it can). A replica without a leader stores nothing new; neither does a
// leader that no longer hears from a quorum of its replicas (cut off, it
// keeps believing it leads for 10 to 20 s while the others elect another).
func servingProblem(info *jetstream.StreamInfo, silence time.Duration) string {
	ci := info.Cluster
	if ci == nil || len(ci.Replicas) == 0 && ci.Leader != "" {
		return "" // not clustered, or a single replica
	}
	if ci.Leader == "" {
		return "the stream has no leader there (cut off from the rest of the cluster, or an election)"
	}
	heard := 1 // the leader itself
	for _, p := range ci.Replicas {
		if !p.Offline && p.Active <= silence {
			heard++
		}
	}
	if size := len(ci.Replicas) + 1; heard < size/2+1 {
		return fmt.Sprintf("the stream's leader %s has heard from %d of its %d replicas within %s (cut off from the rest of the cluster)", ci.Leader, heard-1, size-1, silence)
	}
	return ""
}

func (h *hub) setStuck(why string) {
	if why == "" {
		h.stuck.Store(nil)
		return
	}
	h.stuck.Store(&why)
}

// isReady says whether NATS and the stream are reachable.
func (h *hub) isReady() bool { return h.ready.Load() && h.nc.IsConnected() }

// delivering says whether the upstream can deliver right now: a server
// that merely answers for the stream is not enough.
func (h *hub) delivering() bool { return h.stuck.Load() == nil && h.nc.IsConnected() }

// stuckReason says why the upstream cannot deliver, for /readyz.
func (h *hub) stuckReason() string {
	if why := h.stuck.Load(); why != nil {
		return *why
	}
	return "NATS connection lost; reconnecting"
}

func newStreamState(streamSubjects, configured []string) *streamState {
	st := &streamState{subjects: streamSubjects, served: configured}
	if len(st.served) == 0 {
		st.served = streamSubjects
	}
	st.filters = filtersFor(st.served)
	return st
}

// filtersFor drops patterns inside others; JetStream refuses overlapping
// filter subjects, so when overlaps remain the answer is nil (no filter) and
// the caller matches each message itself.
func filtersFor(patterns []string) []string {
	var out []string
	for i, p := range patterns {
		inside := false
		for j, q := range patterns {
			if i != j && subjects.Inside(p, q) && (!subjects.Inside(q, p) || j < i) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, p)
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if subjects.Overlap(out[i], out[j]) {
				return nil
			}
		}
	}
	return out
}

// served reports whether pattern lies inside the served subjects and the
// stream's subjects.
func (st *streamState) servesPattern(pattern string) bool {
	return insideAny(pattern, st.served) && insideAny(pattern, st.subjects)
}

func insideAny(pattern string, outer []string) bool {
	return slices.ContainsFunc(outer, func(o string) bool { return subjects.Inside(pattern, o) })
}

func matchesAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		// Equal strings first: most streams are on one literal subject, and
		// catching up from the ring asks this for every frame it scans.
		if p == subject || subjects.Match(p, subject) {
			return true
		}
	}
	return false
}

// onMessage encodes one upstream message and hands it to every live
// subscriber whose filters match. It never blocks on a subscriber.
func (h *hub) onMessage(gen uint64, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	st := h.state.Load()
	if st == nil || (st.filters == nil && !matchesAny(st.served, m.Subject())) {
		return
	}
	h.dispatch(gen, newFrame(meta.Sequence.Stream, m.Subject(), meta.Timestamp, m.Headers(), m.Data()))
}

// dispatch keeps f in the ring and queues it for every live subscriber
// whose filters match.
func (h *hub) dispatch(gen uint64, f *frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen {
		return // from a consumer that was replaced
	}
	if h.failing.Load() != 0 {
		h.failing.Store(0) // progress
	}
	h.metrics.upstream.Inc()
	if f.seq <= h.ring.head {
		// The stream went back: it was recreated. Memory can't serve the old
		// positions; clients resume through JetStream.
		h.log.Warn("stream sequence went back; was the stream recreated?", "seq", f.seq, "head", h.ring.head)
		h.ring.reset(f.seq - 1)
		h.replays.reset()
	}
	h.ring.push(f)
	h.index.Match(f.subject, func(s *subscriber) {
		if f.seq <= s.last {
			return
		}
		s.last = f.seq
		if !s.push(f) {
			h.overflow = append(h.overflow, s)
		}
	})
	for _, s := range h.overflow {
		h.detachLocked(s)
		h.metrics.detached.Inc()
	}
	clear(h.overflow)
	h.overflow = h.overflow[:0]
}

// catchUp appends to dst the frames after pos that s wants, scanning at most
// budget frames of the ring. When the scan reaches the head, s joins the live
// set (under the same lock, so nothing falls between) and attached is true.
// ok is false when the ring no longer covers pos.
func (h *hub) catchUp(s *subscriber, pos uint64, dst []*frame, budget int) (frames []*frame, next uint64, attached, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.ring
	if r == nil || !r.covers(pos) {
		return dst, pos, false, false
	}
	next = pos
	for i := r.after(pos); i < r.n; i++ {
		if budget == 0 {
			return dst, next, false, true
		}
		budget--
		f := r.at(i)
		if matchesAny(s.patterns, f.subject) {
			dst = append(dst, f)
		}
		next = f.seq
	}
	next = max(next, r.head, pos)
	s.last = next
	s.attached = true
	for _, p := range s.patterns {
		h.index.Insert(p, s)
	}
	return dst, next, true, true
}

// head is the last sequence the hub has seen: the stream's last sequence is
// at least this.
func (h *hub) head() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		return 0
	}
	return h.ring.head
}

// detach removes s from the live set; it is safe to call more than once.
func (h *hub) detach(s *subscriber) {
	h.mu.Lock()
	h.detachLocked(s)
	h.mu.Unlock()
}

func (h *hub) detachLocked(s *subscriber) {
	if !s.attached {
		return
	}
	s.attached = false
	for _, p := range s.patterns {
		h.index.Remove(p, s)
	}
}

// The upstream's pull requests: see start.
const (
	upstreamExpiry    = 4 * time.Second
	upstreamHeartbeat = time.Second
)

// heartbeatShards spreads the heartbeat ticks over this many groups of
// streams.
const heartbeatShards = 64

// heartbeat returns a channel that closes at shard's next heartbeat tick.
// One ticker serves every connection; ticking at a third of the interval
// keeps every stream's silence under it.
func (h *hub) heartbeat(shard uint32) <-chan struct{} {
	return *h.ticks[shard%heartbeatShards].Load()
}

// shard assigns a new stream its heartbeat shard, round-robin.
func (h *hub) shard() uint32 { return h.nextShard.Add(1) % heartbeatShards }

func (h *hub) heartbeats(ctx context.Context) {
	t := time.NewTicker(max(h.cfg.Heartbeat/3/heartbeatShards, time.Millisecond))
	defer t.Stop()
	for i := 0; ; i = (i + 1) % heartbeatShards {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			next := make(chan struct{})
			close(*h.ticks[i].Swap(&next))
		}
	}
}

// attachLive adds s to the live set at the head: it gets every message the
// hub sees from now on. ok is false before the hub has found the stream.
func (h *hub) attachLive(s *subscriber) (pos uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		return 0, false
	}
	s.last = h.ring.head
	s.attached = true
	for _, p := range s.patterns {
		h.index.Insert(p, s)
	}
	return h.ring.head, true
}
