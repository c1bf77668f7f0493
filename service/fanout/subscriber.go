package fanout

import (
	"sync"
)

// Subscriber is one SSE stream as the core sees it: its patterns and a
// bounded queue. The core appends shared frames to the queue without
// blocking; the stream's goroutine takes everything queued at once and
// writes it with one flush.
type Subscriber struct {
	patterns []string

	// Owned by the core, under Core.mu.
	last     uint64 // highest sequence queued: filters that overlap match once
	attached bool   // in the core's index

	mu       sync.Mutex
	queue    []*Frame
	detached bool // the queue overflowed: catch up from the last frame written
	maxQueue int

	wake     chan struct{} // one pending signal is enough
	stop     chan struct{} // closed to end the stream after a final flush
	stopOnce sync.Once
}

// NewSubscriber returns a subscriber to patterns whose queue holds at most
// maxQueue frames.
func NewSubscriber(patterns []string, maxQueue int) *Subscriber {
	return &Subscriber{
		patterns: patterns,
		maxQueue: maxQueue,
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
	s.mu.Lock()
	if len(s.queue) >= s.maxQueue {
		s.detached = true
		s.mu.Unlock()
		s.signal()
		return false
	}
	s.queue = append(s.queue, f)
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
	detached = s.detached
	s.detached = false
	s.mu.Unlock()
	return frames, detached
}

// Close ends the stream after what is queued has been written.
func (s *Subscriber) Close() { s.stopOnce.Do(func() { close(s.stop) }) }
