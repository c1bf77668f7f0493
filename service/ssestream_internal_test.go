package service

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/heartbeat"
)

// brokenSink takes writes and fails every flush after the first ok ones,
// as a connection the client reset does.
type brokenSink struct{ ok int }

func (b *brokenSink) setDeadline(time.Time) {}
func (b *brokenSink) write([]byte) error    { return nil }
func (b *brokenSink) abort()                {}
func (b *brokenSink) done()                 {}
func (b *brokenSink) peerClosed() bool      { return false }
func (b *brokenSink) flush() error {
	if b.ok == 0 {
		return syscall.EPIPE
	}
	b.ok--
	return nil
}

// TestLiveWriteErrorEndReason: a live stream whose write fails ends as
// write_error in natsse_streams_ended_total (it was counted as other).
func TestLiveWriteErrorEndReason(t *testing.T) {
	s := &Server{cfg: Config{}.WithDefaults(), log: slog.New(slog.DiscardHandler), metrics: newMetrics(), clock: heartbeat.New(time.Hour)}
	s.streams = newRegistry(10, 10, s.metrics.clientLimit, s.log)
	core := fanout.New(fanout.Config{RingEvents: 16, RingBytes: 1 << 20, Log: s.log, Dispatched: s.metrics.upstream.WithLabelValues("EVENTS"), Detached: s.metrics.detached})
	gen, _ := core.Restart(0, false)
	ss := &sseStream{sseDeps: &sseDeps{src: &servedStream{core: core}, clock: s.clock, metrics: s.metrics, log: s.log, writeTimeout: time.Second, queueBytes: 1 << 20},
		sub: fanout.NewSubscriber([]string{"events.a"}, 8, 1<<20), out: &brokenSink{ok: 1}, release: func() {}}
	if err := s.streams.add(ss); err != nil {
		t.Fatal(err)
	}
	if _, ok := core.AttachLive(ss.sub); !ok {
		t.Fatal("attach failed")
	}
	core.Dispatch(gen, fanout.NewFrame(1, "events.a", time.Now(), nil, []byte("x")))

	s.runStream(context.Background(), ss, true)

	if got := endedCount(t, s.metrics, "write_error"); got != 1 {
		t.Errorf("streams ended as write_error: got %v, want 1 (other: %v)", got, endedCount(t, s.metrics, "other"))
	}
	var we writeError
	if err := ss.writeRaw([]byte("x")); !errors.As(err, &we) {
		t.Errorf("a failed write: got %v, want a writeError", err)
	}
}

// endedCount reads natsse_streams_ended_total{reason=reason}.
func endedCount(t *testing.T, m *metrics, reason string) float64 {
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "natsse_streams_ended_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
