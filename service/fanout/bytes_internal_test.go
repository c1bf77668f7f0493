package fanout

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestQueueBoundedInBytes: a subscriber whose queue is full in bytes, though
// not in frames, leaves the live set like one over its frame bound, and
// catches up in batches of at most its queue bytes (one frame at least),
// missing nothing (docs/operations.md, "Limits").
func TestQueueBoundedInBytes(t *testing.T) {
	c := New(Config{RingEvents: 100, RingBytes: 1 << 30, Log: slog.New(slog.DiscardHandler),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}),
		Detached:   prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})})
	gen, _ := c.Restart(0, false)
	frame := func(seq uint64) *Frame {
		return NewFrame(seq, "events.a", time.Time{}, nil, bytes.Repeat([]byte("x"), 1000))
	}
	size := frame(1).Size()
	s := NewSubscriber([]string{"events.a"}, 100, 2*size+size/2)
	if _, ok := c.AttachLive(s); !ok {
		t.Fatal("attach failed")
	}
	for seq := uint64(1); seq <= 10; seq++ {
		c.Dispatch(gen, frame(seq))
	}
	queued, detached := s.Take(nil)
	if len(queued) != 2 || !detached {
		t.Fatalf("%d frames queued, detached %v; want 2 and detached", len(queued), detached)
	}
	pos := queued[1].Seq
	for batches := 0; ; batches++ {
		frames, next, attached, ok := c.CatchUp(s, pos, nil, 1024, 2*size+size/2)
		if !ok || len(frames) > 2 || len(frames) == 0 && !attached {
			t.Fatalf("catch-up from %d: %d frames, ok %v, attached %v; want 1 or 2 frames", pos, len(frames), ok, attached)
		}
		for _, f := range frames {
			if f.Seq != pos+1 {
				t.Fatalf("frame %d after %d", f.Seq, pos)
			}
			pos = f.Seq
		}
		if pos != next {
			t.Fatalf("next %d, want %d", next, pos)
		}
		if attached {
			break
		}
	}
	if pos != 10 {
		t.Fatalf("caught up to %d, want 10", pos)
	}
	// One frame larger than the bound is still queued, alone.
	big := NewSubscriber([]string{"events.a"}, 100, 10)
	c.AttachLive(big)
	c.Dispatch(gen, frame(11))
	if queued, detached := big.Take(nil); len(queued) != 1 || detached {
		t.Fatalf("%d frames queued, detached %v; want the one frame", len(queued), detached)
	}
}
