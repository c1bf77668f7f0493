// Package resume is what resuming SSE streams share when the ring no longer
// holds their position (docs/protocol.md, "Resuming"): a bounded number of
// replay slots (each a short-lived
// JetStream consumer; other resumes wait their turn with their SSE stream
// open), a cache through which resumes on the same subjects share what one
// of them reads, and the stream's bounds, read once for a storm of resumes,
// against which requested positions are checked ("Reset"). Slots and cache
// are budgets shared by the Resumers of every served stream (Shared).
package resume

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Shared is what the resumers of every served stream share: the replay
// slots (NATSSE_REPLAY_CONCURRENCY) and the replay cache
// (NATSSE_REPLAY_CACHE_BYTES), each one budget for all streams.
type Shared struct {
	slots chan struct{}
	cache *Cache
}

// NewShared sizes the slots and the cache.
func NewShared(concurrency, cacheBytes int) *Shared {
	return &Shared{slots: make(chan struct{}, concurrency), cache: newCache(cacheBytes)}
}

// Config says which stream a Resumer serves.
type Config struct {
	// Stream names the JetStream stream.
	Stream string
	// Shared are the slots and the cache; New makes its own when nil.
	Shared *Shared
}

// Resumer serves the resumes of one JetStream stream.
type Resumer struct {
	js     jetstream.JetStream
	stream string
	slots  chan struct{}
	cache  *Cache

	boundsMu       sync.Mutex
	boundsInflight *boundsCall
}

// New returns the resumer of cfg.Stream.
func New(cfg Config, js jetstream.JetStream) *Resumer {
	if cfg.Shared == nil {
		cfg.Shared = NewShared(16, 64<<20)
	}
	return &Resumer{js: js, stream: cfg.Stream, slots: cfg.Shared.slots, cache: cfg.Shared.cache}
}

// Key names a set of replay filters of this stream in the shared cache.
func (r *Resumer) Key(filters []string) string { return r.stream + "\x00" + FilterKey(filters) }

// Forget drops what the cache holds of this stream, whose sequences
// started over.
func (r *Resumer) Forget() { r.cache.forget(r.stream + "\x00") }

// Slots takes a replay slot when a send on it succeeds; Release gives it
// back. A channel, so that a stream can wait for one while it keeps its
// client alive and notices its end.
func (r *Resumer) Slots() chan<- struct{} { return r.slots }

// Release gives back a slot taken from Slots.
func (r *Resumer) Release() { <-r.slots }

// Prefetch is how many bytes a replay's consumer may hold unread in the
// NATS client: at least want, and room for two of the largest messages
// NATS takes (max_payload), so that every message can come. A bound in
// messages let replays of 1 MB messages hold 256 MB each, past the client's
// pending limit, which then dropped messages (docs/operations.md, "Limits").
func (r *Resumer) Prefetch(want int) int {
	return max(want, 2*int(r.js.Conn().MaxPayload())+64<<10)
}

// Cache is what replays read, shared.
func (r *Resumer) Cache() *Cache { return r.cache }

// Consumer creates an ephemeral, unacknowledged, in-memory consumer on
// filters starting after pos, or at since when it is set.
func (r *Resumer) Consumer(ctx context.Context, filters []string, pos uint64, since *time.Time) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: 30 * time.Second,
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       pos + 1,
	}
	if since != nil {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, since
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return r.js.CreateConsumer(ctx, r.stream, cfg)
}

// Delete removes a replay consumer; the server would after 30 s anyway.
func (r *Resumer) Delete(cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, r.stream, cons.CachedInfo().Name)
}
