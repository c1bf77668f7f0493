// Package fanout is the fan-out core of one served JetStream stream: every
// message is encoded once into a Frame, kept in a ring of recent frames and
// handed through a subject index to the bounded queue of every live
// Subscriber whose patterns match. Dispatch never blocks on a subscriber: one
// whose queue is full leaves the live set and catches up on its own (Take
// says so). CatchUp copies frames from the ring and joins the live set under
// the same lock as dispatch, so a subscriber switching from catching up to
// live misses nothing and gets nothing twice (docs/protocol.md, "Resuming").
//
// One core serves one JetStream stream: positions are that stream's
// sequences. What feeds it (the upstream reader) and what reads it (the SSE
// streams) live elsewhere.
package fanout

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natsse/natsse/subjects"
)

// Config bounds a core's ring and says what it reports.
type Config struct {
	RingEvents, RingBytes int
	Log                   *slog.Logger
	// Dispatched counts the frames dispatched; Detached the subscribers
	// dropped from the live set because their queue was full.
	Dispatched, Detached prometheus.Counter
	// Rewound is called, under the core's lock, when the stream's sequence
	// went back (it was recreated): what was kept of the old sequences,
	// elsewhere too, is worthless.
	Rewound func()
}

// Core is the fan-out of one JetStream stream.
type Core struct {
	cfg Config

	mu       sync.Mutex
	ring     *ring // nil until Restart
	index    *subjects.Index[*Subscriber]
	overflow []*Subscriber // scratch for Dispatch
	// gen numbers the feeds (Restart): frames of a feed that was replaced
	// are dropped, so that a stopped upstream consumer still delivering
	// cannot repeat what its successor delivers.
	gen uint64
	// shareBytes is the ring's share of NATSSE_RING_BYTES (0: all of it).
	shareBytes int
}

// New returns an empty core; it serves positions once Restart was called.
func New(cfg Config) *Core {
	return &Core{cfg: cfg, index: subjects.NewIndex[*Subscriber]()}
}

// Restart begins a new feed of the stream. A first feed, or one after the
// stream was created again (over: its sequences started over), begins at
// head with an empty ring; over also drops every live subscriber, whose
// positions belong to the old stream. Otherwise the ring and the live
// subscribers carry on. The feed's frames must come with gen, from next on.
func (c *Core) Restart(head uint64, over bool) (gen, next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil || over {
		c.ring = newRing(c.cfg.RingEvents, c.ringBytes(), head)
	}
	if over {
		c.index = subjects.NewIndex[*Subscriber]()
	}
	c.gen++
	return c.gen, c.ring.head + 1
}

// Prime gives an idle core (a first one, or one Idle emptied) a new, empty
// ring at head, the stream's last sequence as just read, so that streams
// can attach before the upstream consumer is there: it then starts after
// head (Restart keeps a ring it finds). It reports false, and does
// nothing, when the core has a ring.
func (c *Core) Prime(head uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring != nil {
		return false
	}
	c.ring = newRing(c.cfg.RingEvents, c.ringBytes(), head)
	return true
}

// Idle drops the ring and ends the current feed, for an upstream consumer
// stopped because nobody reads the stream: what the ring holds would have
// a gap after it. The caller makes sure no subscriber is attached.
func (c *Core) Idle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = nil
	c.gen++
}

// Fed says whether the core has a ring: it is, or is about to be, fed.
func (c *Core) Fed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ring != nil
}

// SetRingBytes changes the ring's byte bound, for its share of a budget
// that several cores split (docs/configuration.md, NATSSE_RING_BYTES): a
// smaller bound evicts the oldest frames at once.
func (c *Core) SetRingBytes(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shareBytes = n
	if c.ring == nil {
		return
	}
	c.ring.maxBytes = n
	for c.ring.n > 1 && c.ring.bytes > n {
		c.ring.evict()
	}
}

func (c *Core) ringBytes() int {
	if c.shareBytes > 0 {
		return c.shareBytes
	}
	return c.cfg.RingBytes
}

// IfCurrent runs fn, under the core's lock, if gen is the current feed.
func (c *Core) IfCurrent(gen uint64, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		fn()
	}
}

// Dispatch keeps f in the ring and queues it for every live subscriber
// whose patterns match. It reports false for a frame of a replaced feed,
// which it drops.
func (c *Core) Dispatch(gen uint64, f *Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return false
	}
	c.cfg.Dispatched.Inc()
	if f.Seq <= c.ring.head {
		// The stream went back: it was recreated. Memory can't serve the old
		// positions; clients resume through JetStream.
		c.cfg.Log.Warn("stream sequence went back; was the stream recreated?", "seq", f.Seq, "head", c.ring.head)
		c.ring.reset(f.Seq - 1)
		if c.cfg.Rewound != nil {
			c.cfg.Rewound()
		}
	}
	c.ring.push(f)
	c.index.Match(f.Subject, func(s *Subscriber) {
		if f.Seq <= s.last {
			return
		}
		s.last = f.Seq
		if !s.push(f) {
			c.overflow = append(c.overflow, s)
		}
	})
	for _, s := range c.overflow {
		c.detachLocked(s)
		c.cfg.Detached.Inc()
	}
	clear(c.overflow)
	c.overflow = c.overflow[:0]
	return true
}

// CatchUp appends to dst the frames after pos that s wants, scanning at most
// budget frames of the ring and appending frames of at most maxBytes (one
// at least): a batch stuck in the write to a client that stopped reading
// holds no more than its queue would (docs/operations.md, "Limits"). When the scan reaches the head, s joins the live
// set (under the same lock, so nothing falls between) and attached is true.
// ok is false when the ring no longer covers pos.
func (c *Core) CatchUp(s *Subscriber, pos uint64, dst []*Frame, budget, maxBytes int) (frames []*Frame, next uint64, attached, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.ring
	if r == nil || !r.covers(pos) {
		return dst, pos, false, false
	}
	next = pos
	size := 0
	for i := r.after(pos); i < r.n; i++ {
		f := r.at(i)
		want := subjects.MatchAny(s.patterns, f.Subject)
		if budget == 0 || want && size > 0 && size+f.Size() > maxBytes {
			return dst, next, false, true
		}
		budget--
		if want {
			dst = append(dst, f)
			size += f.Size()
		}
		next = f.Seq
	}
	next = max(next, r.head, pos)
	c.attachLocked(s, next)
	return dst, next, true, true
}

// AttachLive adds s to the live set at the head: it gets every frame
// dispatched from now on. ok is false before the first Restart.
func (c *Core) AttachLive(s *Subscriber) (pos uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		return 0, false
	}
	c.attachLocked(s, c.ring.head)
	return c.ring.head, true
}

func (c *Core) attachLocked(s *Subscriber, pos uint64) {
	s.last = pos
	s.attached = true
	for _, p := range s.patterns {
		c.index.Insert(p, s)
	}
}

// Head is the last sequence the core has seen: the stream's last sequence
// is at least this.
func (c *Core) Head() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		return 0
	}
	return c.ring.head
}

// Detach removes s from the live set; it is safe to call more than once.
func (c *Core) Detach(s *Subscriber) {
	c.mu.Lock()
	c.detachLocked(s)
	c.mu.Unlock()
}

func (c *Core) detachLocked(s *Subscriber) {
	if !s.attached {
		return
	}
	s.attached = false
	for _, p := range s.patterns {
		c.index.Remove(p, s)
	}
}
