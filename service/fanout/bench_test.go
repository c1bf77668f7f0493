package fanout

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkEncodeFrame encodes one event with a 100-byte payload into a
// reused buffer: the per-message cost of the core, which must not allocate.
func BenchmarkEncodeFrame(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 100)
	buf := make([]byte, 0, 256)
	if allocs := testing.AllocsPerRun(10, func() { buf = appendEvent(buf[:0], 1234567, "order.created", data) }); allocs != 0 {
		b.Fatalf("got %v allocations per event, want 0", allocs)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = appendEvent(buf[:0], 1234567, "order.created", data)
	}
}

// benchCore is a core with n live subscribers and no NATS: dispatch alone.
func benchCore(b *testing.B, n int, subject func(i int) string) (*Core, []*Subscriber) {
	h := New(Config{
		RingEvents: 10_000, RingBytes: 64 << 20, Log: slog.New(slog.DiscardHandler),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "dispatched"}),
		Detached:   prometheus.NewCounter(prometheus.CounterOpts{Name: "detached"}),
	})
	h.Restart(0, false)
	subs := make([]*Subscriber, n)
	for i := range subs {
		subs[i] = NewSubscriber([]string{subject(i)}, 1<<30, 1<<30)
		if _, ok := h.AttachLive(subs[i]); !ok {
			b.Fatal("attach failed")
		}
	}
	return h, subs
}

// BenchmarkDispatch measures one event's dispatch: ring, index match and
// a queue append per matching subscriber (reported per delivery).
func BenchmarkDispatch(b *testing.B) {
	cases := []struct {
		name    string
		n       int
		subject func(i int) string
		publish func(i int) string
		perMsg  int
	}{
		{"1000 on one subject", 1_000, func(int) string { return "events.bench" }, func(int) string { return "events.bench" }, 1_000},
		{"10000 on one subject", 10_000, func(int) string { return "events.bench" }, func(int) string { return "events.bench" }, 10_000},
		{"10000 per-user subjects", 10_000, func(i int) string { return fmt.Sprintf("events.users.%d", i) }, func(i int) string { return fmt.Sprintf("events.users.%d", i%10_000) }, 1},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h, subs := benchCore(b, tc.n, tc.subject)
			frames := make([]*Frame, 1024)
			for i := range frames {
				frames[i] = NewFrame(0, tc.publish(i), time.Time{}, nil, bytes.Repeat([]byte("x"), 100))
			}
			var seq uint64
			// Warm up: the queues grow to their working size once; from
			// then on each stream hands its drained queue back (take).
			for i := range 64 {
				seq++
				frames[i].Seq = seq
				h.Dispatch(1, frames[i])
			}
			for _, s := range subs {
				s.Take(s.queue[:0])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				f := frames[i%len(frames)]
				seq++
				f.Seq = seq
				h.Dispatch(1, f)
				if i%64 == 63 {
					b.StopTimer()
					for _, s := range subs {
						s.Take(s.queue[:0])
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.perMsg), "ns/delivery")
		})
	}
}
