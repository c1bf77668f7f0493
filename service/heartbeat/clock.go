// Package heartbeat is the one clock that keeps every idle SSE stream of the
// process alive: instead of a timer per stream, streams wait on a shared
// channel of their shard, closed and replaced every third of the heartbeat
// interval, so that no stream stays silent past the interval
// (docs/protocol.md, "Heartbeats"). Shards tick one after another, so idle
// streams do not all write their heartbeats in the same instant (S8 in
// BENCHMARKS.md).
package heartbeat

import (
	"context"
	"sync/atomic"
	"time"
)

// shards spreads the ticks over this many groups of streams.
const shards = 64

// Clock hands out heartbeat ticks; the zero Clock is not usable, see New.
type Clock struct {
	interval  time.Duration
	ticks     [shards]atomic.Pointer[chan struct{}]
	nextShard atomic.Uint32
}

// New returns a clock for the heartbeat interval; it ticks once Run runs.
func New(interval time.Duration) *Clock {
	c := &Clock{interval: interval}
	for i := range c.ticks {
		ch := make(chan struct{})
		c.ticks[i].Store(&ch)
	}
	return c
}

// Shard assigns a new stream its shard, round-robin.
func (c *Clock) Shard() uint32 { return c.nextShard.Add(1) % shards }

// Tick returns a channel that closes at shard's next tick. Ticks come every
// third of the interval: a stream that writes a heartbeat on the second
// tick without a write is never silent longer than two thirds of it.
func (c *Clock) Tick(shard uint32) <-chan struct{} {
	return *c.ticks[shard%shards].Load()
}

// Run ticks the shards one after another until ctx ends.
func (c *Clock) Run(ctx context.Context) {
	t := time.NewTicker(max(c.interval/3/shards, time.Millisecond))
	defer t.Stop()
	for i := 0; ; i = (i + 1) % shards {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			next := make(chan struct{})
			close(*c.ticks[i].Swap(&next))
		}
	}
}
