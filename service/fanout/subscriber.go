package fanout

import (
	"sync"
)

// Subscriber is one SSE stream as the core sees it: its patterns and a
// queue bounded in frames and in bytes (a count alone let one client that
// stopped reading pin hundreds of large messages; docs/operations.md,
// "Limits"). The core appends shared frames to the queue without blocking;
// the stream's goroutine takes everything queued at once and writes it
// with one flush.
type Subscriber struct {
	patterns []string

	// Owned by the core, under Core.mu.
	last     uint64 // highest sequence queued: filters that overlap match once
	attached bool   // in the core's index

	mu       sync.Mutex
	queue    []*Frame
	bytes    int  // Size of the frames queued
	detached bool // the queue overflowed: catch up from the last frame written
	maxQueue int
	maxBytes int

	wake     chan struct{} // one pending signal is enough
	stop     chan struct{} // closed to end the stream after a final flush
	stopOnce sync.Once
}

// NewSubscriber returns a subscriber to patterns whose queue holds at most
// maxQueue frames and maxBytes bytes; a frame larger than maxBytes is
// queued when the queue is empty, so that it does not detach the
// subscriber on every event.
func NewSubscriber(patterns []string, maxQueue, maxBytes int) *Subscriber {
	return &Subscriber{
		patterns: patterns,
		maxQueue: maxQueue,
		maxBytes: maxBytes,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// Patterns are the subjects the subscriber asked for.
func (s *Subscriber) Patterns() []string { return s.patterns }

// Wake receives when something was queued, or the queue overflowed.
func (s *Subscriber) Wake() <-chan struct{} { return s.wake }

// Stopped is closed once Close was called.
func (s *Subscriber) Stopped() <-chan struct{} { return s.stop }

// push queues f and reports false when the queue is full: the core then
// drops the subscriber from the live set instead of waiting for it.
func (s *Subscriber) push(f *Frame) bool {
	size := f.Size()
	s.mu.Lock()
	if len(s.queue) >= s.maxQueue || len(s.queue) > 0 && s.bytes+size > s.maxBytes {
		s.detached = true
		s.mu.Unlock()
		s.signal()
		return false
	}
	s.queue = append(s.queue, f)
	s.bytes += size
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		s.signal()
	}
	return true
}

func (s *Subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Take hands over everything queued, reusing spare as the next queue.
// detached says that the queue overflowed and the subscriber left the live
// set: it must catch up from the last frame it wrote.
func (s *Subscriber) Take(spare []*Frame) (frames []*Frame, detached bool) {
	s.mu.Lock()
	frames, s.queue = s.queue, spare[:0]
	s.bytes = 0
	detached = s.detached
	s.detached = false
	s.mu.Unlock()
	return frames, detached
}

// Close ends the stream after what is queued has been written.
func (s *Subscriber) Close() { s.stopOnce.Do(func() { close(s.stop) }) }
