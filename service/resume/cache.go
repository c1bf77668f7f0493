package resume

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/natsse/natsse/service/fanout"
)

// Cache shares what replays read from JetStream between SSE streams that
// resume on the same subjects. After a mass disconnect thousands of clients
// resume from nearly the same position; without it each one reads the same
// messages through a consumer of its own, and NATS and natsse spend their
// CPU on the same messages over and over (S6 in BENCHMARKS.md). With it, one
// stream reads and the others follow it from memory, as from the ring.
type Cache struct {
	mu       sync.Mutex
	runs     map[string][]*Run // by filter key
	bytes    int
	maxBytes int
	clock    uint64
	swept    time.Time // last drop of idle runs
}

// replayIdle is how long a run nobody reads from is kept: a storm's replays
// share within seconds, and memory held after it helps nobody.
const replayIdle = time.Minute

// ReaderStall is how long a run's reader may be writing one batch to its
// own client before the streams waiting on the run stop waiting and read
// for themselves: a reader is an SSE stream like the others, and one whose
// client stopped reading blocks in that write until the write timeout cut
// it off (15 s by default), holding up every stream that followed it. A
// healthy client takes a batch in milliseconds.
const ReaderStall = time.Second

// Run is what one filter set's replays have read: every message that
// matches the filters with a sequence in (from, to] is in frames, in order.
type Run struct {
	key      string
	from, to uint64
	frames   []*fanout.Frame
	bytes    int
	reading  bool          // a stream is extending it from JetStream
	writing  time.Time     // since when the reader writes a batch to its client (zero: it does not)
	changed  chan struct{} // closed (and replaced) when to grows or reading ends
	used     uint64
	usedAt   time.Time
	evicted  bool
}

func newCache(maxBytes int) *Cache {
	return &Cache{runs: map[string][]*Run{}, maxBytes: maxBytes}
}

// FilterKey names a set of replay filters.
func FilterKey(filters []string) string {
	f := slices.Clone(filters)
	slices.Sort(f)
	return strings.Join(f, " ")
}

// Lookup answers an SSE stream at pos in one of three ways: frames after pos that
// a run holds (at most budget, and at most maxBytes but one at least, like
// fanout.Core.CatchUp; next is the position they bring the stream to), a channel to wait on because another stream is reading exactly at
// pos, or a run the caller must extend from JetStream (it then reads for
// everybody, and calls extend and release). A reader stuck writing to its
// own client for ReaderStall is not waited for: the caller gets a run of
// its own. A caller that waits comes back after ReaderStall at the latest.
func (c *Cache) Lookup(key string, pos uint64, dst []*fanout.Frame, budget, maxBytes int) (frames []*fanout.Frame, next uint64, wait <-chan struct{}, read *Run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	now := time.Now()
	if now.Sub(c.swept) > replayIdle/6 {
		c.swept = now
		c.dropIdle(now)
	}
	var idle *Run
	for _, r := range c.runs[key] {
		switch {
		case r.from <= pos && pos < r.to:
			r.used, r.usedAt = c.clock, now
			i, _ := slices.BinarySearchFunc(r.frames, pos+1, func(f *fanout.Frame, seq uint64) int {
				switch {
				case f.Seq < seq:
					return -1
				case f.Seq > seq:
					return 1
				}
				return 0
			})
			end := min(len(r.frames), i+budget)
			for j, size := i, 0; j < end; j++ {
				if size += r.frames[j].Size(); size > maxBytes && j > i {
					end = j
				}
			}
			dst = append(dst, r.frames[i:end]...)
			if end < len(r.frames) {
				return dst, r.frames[end-1].Seq, nil, nil
			}
			return dst, r.to, nil, nil
		case r.to == pos && r.reading && (r.writing.IsZero() || now.Sub(r.writing) < ReaderStall):
			wait = r.changed
		case r.to == pos:
			idle = r
		}
	}
	if wait != nil {
		return dst, pos, wait, nil
	}
	if idle == nil {
		idle = &Run{key: key, from: pos, to: pos, changed: make(chan struct{})}
		c.runs[key] = append(c.runs[key], idle)
	}
	idle.reading = true
	idle.used, idle.usedAt = c.clock, now
	return dst, pos, nil, idle
}

// Extend adds what the reader of r read: frames, all of the matching
// messages up to to.
func (c *Cache) Extend(r *Run, frames []*fanout.Frame, to uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.evicted || to <= r.to {
		return
	}
	for _, f := range frames {
		if f.Seq > r.to {
			r.frames = append(r.frames, f)
			n := f.Size()
			r.bytes += n
			c.bytes += n
		}
	}
	r.to = to
	r.usedAt = time.Now()
	r.notify()
	c.evict(r)
}

// Writing tells the cache that r's reader began writing a batch to its own
// client (true) or finished (false); see ReaderStall.
func (c *Cache) Writing(r *Run, writing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.writing = time.Time{}
	if writing {
		r.writing = time.Now()
	}
}

// Release ends r's reading; a stream waiting at its end reads next.
func (c *Cache) Release(r *Run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.reading = false
	r.notify()
	if len(r.frames) == 0 && r.from == r.to {
		c.drop(r)
	}
}

// CoveredElsewhere reports whether a run other than r already holds pos:
// r's reader can stop and follow it instead of reading the same messages.
func (c *Cache) CoveredElsewhere(r *Run, pos uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.runs[r.key] {
		if o != r && o.from <= pos && pos < o.to {
			return true
		}
	}
	return false
}

// Reset forgets everything.
func (c *Cache) Reset() { c.forget("") }

// forget drops the runs whose key starts with prefix.
func (c *Cache) forget(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, runs := range c.runs {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		for _, r := range runs {
			c.bytes -= r.bytes
			r.evicted = true
			r.frames, r.bytes = nil, 0
			r.notify()
		}
		delete(c.runs, key)
	}
}

func (r *Run) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// evict keeps the cache within maxBytes: whole runs, least recently used
// first; a run being read loses its oldest frames instead, so readers
// keep going.
func (c *Cache) evict(keep *Run) {
	for c.bytes > c.maxBytes {
		var lru *Run
		for _, runs := range c.runs {
			for _, r := range runs {
				if r != keep && !r.reading && (lru == nil || r.used < lru.used) {
					lru = r
				}
			}
		}
		if lru != nil {
			c.drop(lru)
			continue
		}
		// Only runs being read are left: trim keep's oldest half.
		n := max(len(keep.frames)/2, 1)
		if n > len(keep.frames) {
			return
		}
		for _, f := range keep.frames[:n] {
			sz := f.Size()
			keep.bytes -= sz
			c.bytes -= sz
		}
		keep.from = keep.frames[n-1].Seq
		keep.frames = slices.Delete(keep.frames, 0, n)
		if len(keep.frames) == 0 {
			keep.from = keep.to
			return
		}
	}
}

// dropIdle drops the runs nobody read from or extended for replayIdle.
func (c *Cache) dropIdle(now time.Time) {
	var idle []*Run
	for _, runs := range c.runs {
		for _, r := range runs {
			if !r.reading && now.Sub(r.usedAt) > replayIdle {
				idle = append(idle, r)
			}
		}
	}
	for _, r := range idle {
		c.drop(r)
	}
}

func (c *Cache) drop(r *Run) {
	runs := c.runs[r.key]
	if i := slices.Index(runs, r); i >= 0 {
		runs = slices.Delete(runs, i, i+1)
	}
	if len(runs) == 0 {
		delete(c.runs, r.key)
	} else {
		c.runs[r.key] = runs
	}
	c.bytes -= r.bytes
	r.evicted = true
	r.frames, r.bytes = nil, 0
	r.notify()
}
