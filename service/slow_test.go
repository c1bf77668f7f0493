package service_test

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
)

// openStalled opens a stream from a client that never reads, with a tiny
// receive buffer so the server's writes block soon.
func (e *env) openStalled(path string) net.Conn {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: natsse\r\n\r\n", path)
	return conn
}

// TestStalledClientDoesNotHoldUpOthers: while a client that never reads is
// still connected, a reading client on the same subject gets every event,
// and the memory natsse holds stays bounded by the ring, the replay cache
// and the queues, far below what was published.
func TestStalledClientDoesNotHoldUpOthers(t *testing.T) {
	const events, size = 4_000, 16 << 10 // 62.5 MiB in all
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1 << 10

	// The reading client may fall behind too, and catch up through a replay
	// whose events the replay cache keeps (bounded as well). The write
	// timeout is longer than any machine takes to publish and read it all:
	// the stalled client must still be open when memory is measured.
	e := start(t, service.Config{WriteTimeout: time.Hour, QueueEvents: 64, RingEvents: 1_000, RingBytes: 4 << 20, ReplayCacheBytes: 4 << 20})
	e.openStalled("/events/big")
	fast := e.open("/events/big", nil)
	waitFor(t, "both streams to open", func() bool { return e.metric("natsse_streams_open") == 2 })

	payload := strings.Repeat("x", size)
	wait := e.publishInBackground(fast, events, "events.big", func(int) string { return payload })
	fast.expectSeqs(1, events)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	held := natsseHeap()
	if open := e.metric("natsse_streams_open"); open != 2 {
		t.Fatalf("%v streams open, want the stalled one still open while memory is measured", open)
	}
	t.Logf("natsse holds %d KiB after %d MiB went to a client that never reads", held>>10, events*size>>20)
	// The bound of docs/operations.md ("What bounds natsse's memory"), as
	// TestLargeMessagesStalledReaders counts it: ring, replay cache, the
	// upstream's prefetch (8 MiB), and per connection its queue (64 events
	// here), a batch in its write and a replay's prefetch, and one frame.
	const queue = 64 * size
	if limit := int64(4<<20 + 4<<20 + 8<<20 + 2*(3*queue+2*size)); held > limit {
		t.Errorf("natsse holds %d MiB, want at most %d MiB", held>>20, limit>>20)
	}
}

// TestStalledClientIsCutOff: a client that stops reading is cut off once a
// write has waited WriteTimeout.
func TestStalledClientIsCutOff(t *testing.T) {
	e := start(t, service.Config{WriteTimeout: 500 * time.Millisecond, QueueEvents: 64, RingEvents: 1_000})
	e.openStalled("/events/big")
	waitFor(t, "the stream to open", func() bool { return e.metric("natsse_streams_open") == 1 })
	payload := strings.Repeat("x", 16<<10)
	e.publishMany(1_000, func(int) string { return "events.big" }, func(int) string { return payload })
	waitFor(t, "the stalled client to be cut off", func() bool { return e.metric("natsse_streams_open") == 0 })
}

// natsseHeap sums the in-use bytes of the heap profile that natsse
// allocated: the service package and its rooms, and the NATS client, which
// allocates every message natsse receives (nats-server runs in the same
// process and caches what was published, so the whole heap would say
// little; the test's own SSE clients, ssetest, are not natsse).
func natsseHeap() int64 {
	runtime.GC()
	runtime.GC() // the profile lags one cycle behind
	n, _ := runtime.MemProfile(nil, true)
	recs := make([]runtime.MemProfileRecord, n+64)
	n, _ = runtime.MemProfile(recs, true)
	var sum int64
	for _, r := range recs[:n] {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if natsseFunc(f.Function) {
				sum += r.InUseBytes()
				break
			}
			if !more {
				break
			}
		}
	}
	return sum
}

func natsseFunc(name string) bool {
	switch {
	case strings.HasPrefix(name, "github.com/natsse/natsse/service/ssetest."):
		return false
	case strings.HasPrefix(name, "github.com/natsse/natsse/service."), strings.HasPrefix(name, "github.com/natsse/natsse/service/"):
		return true
	}
	return strings.HasPrefix(name, "github.com/nats-io/nats.go.") || strings.HasPrefix(name, "github.com/nats-io/nats.go/")
}

// TestReplayCapacitySoftRefusal: with every replay slot held (by a stalled
// client's replay), a stream that needs a replay of its own waits
// ReplayWait with its stream open, then gets the soft refusal: a retry
// line, and the stream ends, so the client comes back later with its
// Last-Event-ID (docs/protocol.md, "The soft refusal": replay capacity exhausted).
func TestReplayCapacitySoftRefusal(t *testing.T) {
	e := start(t, service.Config{ReplayConcurrency: 1, ReplayWait: 300 * time.Millisecond, RingEvents: 10,
		WriteTimeout: time.Hour, Retry: time.Second})
	// 16 MiB on events.a, more than socket buffers hold: the stalled
	// client's replay blocks and keeps the only slot.
	payload := strings.Repeat("x", 16<<10)
	e.publishMany(1_000, func(int) string { return "events.a" }, func(int) string { return payload })
	e.publishMany(20, func(int) string { return "events.b" }, func(int) string { return "b" })
	waitFor(t, "the upstream to see every stored event", func() bool { return e.metric("natsse_upstream_events_total") == 1_020 })

	e.openStalled("/events/a?lastEventId=0") // it never reads
	waitFor(t, "the stalled client's replay to hold the slot", func() bool { return e.metric("natsse_replays_total") == 1 })

	c := e.open("/events/b", header("Last-Event-ID", "0"))
	ev, err := c.r.Next()
	if err != nil || ev.Retry < 1000 || ev.HasData || ev.HasID {
		t.Fatalf("got %+v (%v), want a retry line of at least 1s and no event", ev, err)
	}
	if ev, err := c.r.Next(); err == nil {
		t.Fatalf("got %+v after the retry line, want the stream to end", ev)
	}
	if n := e.metric(`natsse_streams_ended_total{reason="replay_busy"}`); n != 1 {
		t.Errorf("streams ended with replay_busy: %v, want 1", n)
	}
}

// TestStalledReplayReaderDoesNotHoldUpFollowers: a client that never reads
// resumes first, so its stream reads the replay for everybody (the replay
// cache) and then blocks writing to it; a reading client resuming from the
// same position follows that replay, and must not wait for the stalled one
// (it stopped at the reader's first batch until the write timeout, an hour
// here, cut the stalled client off): it reads on by itself and gets every
// event.
func TestStalledReplayReaderDoesNotHoldUpFollowers(t *testing.T) {
	const events = 1_000
	e := start(t, service.Config{RingEvents: 10, WriteTimeout: time.Hour})
	// 16 MiB, more than socket buffers hold: the stalled stream's first
	// flush blocks.
	payload := strings.Repeat("x", 16<<10)
	e.publishMany(events, func(int) string { return "events.a" }, func(int) string { return payload })
	waitFor(t, "the upstream to see every stored event", func() bool { return e.metric("natsse_upstream_events_total") == events })

	e.openStalled("/events/a?lastEventId=0")
	waitFor(t, "the stalled client's replay to start", func() bool { return e.metric("natsse_replays_total") == 1 })
	c := e.open("/events/a", header("Last-Event-ID", "0"))
	c.expectSeqs(1, events)
	if n := e.metric("natsse_replay_shared_events_total"); n == 0 {
		t.Error("the reading client shared nothing with the stalled one's replay: the test did not take the path it is for")
	}
}

// TestLargeMessagesStalledReaders is issue 8's shape scaled down: four
// clients that never read, each on a subject of its own, 1 MB messages and
// a small ring. Each stalled connection may pin at most its queue bytes and
// the batch stuck in its write (docs/operations.md, "Limits"); before
// queues were bounded in bytes, each pinned every message of its subject,
// twice (raw and encoded). A reading client on all four subjects meanwhile
// gets every event.
func TestLargeMessagesStalledReaders(t *testing.T) {
	const perSubject, size, stalled = 40, 1_000_000, 4 // 160 MB in all
	const ringBytes, cacheBytes, queueBytes = 4 << 20, 4 << 20, 4 << 20
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 64 << 10

	// The write timeout is an hour: the stalled clients must still be open
	// when memory is measured.
	e := start(t, service.Config{WriteTimeout: time.Hour, RingBytes: ringBytes, ReplayCacheBytes: cacheBytes})
	for i := range stalled {
		e.openStalled(fmt.Sprintf("/events/large/%d", i))
	}
	fast := e.open("/events/large/*", nil)
	waitFor(t, "every stream to open", func() bool { return e.metric("natsse_streams_open") == stalled+1 })

	payload := strings.Repeat("x", size)
	errc := make(chan error, 1)
	go func() {
		err := publishChunked(e.js, perSubject*stalled, func(i int) string { return fmt.Sprintf("events.large.%d", i%stalled) },
			func(int) string { return payload })
		if err != nil {
			fast.cancel()
		}
		errc <- err
	}()
	for want := 1; want <= perSubject*stalled; want++ {
		if ev := fast.next(); ev.ID != strconv.Itoa(want) {
			t.Fatalf("event id %q (%d bytes), want %d", ev.ID, len(ev.Data), want)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	held := natsseHeap()
	if open := e.metric("natsse_streams_open"); open != stalled+1 {
		t.Fatalf("%v streams open, want the stalled ones still open while memory is measured", open)
	}
	// The bound of docs/operations.md, "Limits": the ring, the replay
	// cache, the upstream's prefetch (8 MiB), and per connection its queue
	// and the batch in its write, each at most the queue bytes plus one
	// frame, and a replay's prefetch (the queue bytes here).
	limit := int64(ringBytes + cacheBytes + 8<<20 + (stalled+1)*(3*queueBytes+2*size))
	t.Logf("natsse holds %d MiB with %d clients that never read, %d MB published", held>>20, stalled, perSubject*stalled*size/1_000_000)
	if held > limit {
		t.Errorf("natsse holds %d MiB, want at most %d MiB", held>>20, limit>>20)
	}
}
