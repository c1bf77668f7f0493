package service

import (
	"log/slog"
	"net/netip"
	"sync"
)

// subscriber is one open stream as the hub sees it. The hub appends shared
// frames to its queue without blocking; the connection's goroutine takes
// everything queued at once and writes it with one flush.
type subscriber struct {
	patterns []string
	envelope bool

	// Owned by the hub, under hub.mu.
	last     uint64 // highest sequence queued: filters that overlap match once
	attached bool   // in the hub's index

	mu       sync.Mutex
	queue    []*frame
	detached bool // the queue overflowed: catch up from the last frame written
	maxQueue int

	wake     chan struct{} // one pending signal is enough
	stop     chan struct{} // closed to end the stream after a final flush
	stopOnce sync.Once
	remote   string
	shard    uint32     // heartbeat shard
	client   netip.Addr // what per-client limits count (see clientAddr)
	abort    func()     // ends a blocked write; set and read under Server.mu
}

func newSubscriber(patterns []string, envelope bool, maxQueue int, remote string) *subscriber {
	return &subscriber{
		patterns: patterns,
		envelope: envelope,
		maxQueue: maxQueue,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		remote:   remote,
	}
}

// push queues f and reports false when the queue is full: the hub then drops
// the subscriber from the live set instead of waiting for it.
func (s *subscriber) push(f *frame) bool {
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

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take hands over everything queued, reusing spare as the next queue.
func (s *subscriber) take(spare []*frame) (frames []*frame, detached bool) {
	s.mu.Lock()
	frames, s.queue = s.queue, spare[:0]
	detached = s.detached
	s.detached = false
	s.mu.Unlock()
	return frames, detached
}

// close ends the stream after what is queued has been written.
func (s *subscriber) close() { s.stopOnce.Do(func() { close(s.stop) }) }

func (s *subscriber) LogValue() slog.Value {
	return slog.GroupValue(slog.String("remote", s.remote), slog.Any("subjects", s.patterns))
}
