package service_test

import (
	"strconv"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestResumeStormSharesReplays: many clients resume at once from positions
// older than the ring, on two subjects, while more events arrive. Each gets
// exactly the events of its subject after its position, in order, and they
// share JetStream reads instead of each reading through a consumer of its
// own. With a replay cache too small for the replay, the same holds while
// the cache evicts and trims.
func TestResumeStormSharesReplays(t *testing.T) {
	const stored, more = 3_000, 1_000
	cases := []struct {
		name       string
		cacheBytes int
		maxReplays float64 // consumers created, at most
	}{
		{"cache holds the replay", 0, 12},
		{"cache evicts", 8 << 10, 1e9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, service.Config{RingEvents: 300, ReplayConcurrency: 4, ReplayCacheBytes: tc.cacheBytes})
			subject := func(i int) string { // sequence i+1: odd on a, even on b
				if i%2 == 0 {
					return "events.storm.a"
				}
				return "events.storm.b"
			}
			payload := func(i int) string { return seqPayload(i + 1) }
			e.publishMany(stored, subject, payload)
			waitFor(t, "the upstream to see every stored event", func() bool { return e.metric("natsse_upstream_events_total") == stored })

			type resumer struct {
				c     *client
				path  string
				pos   uint64
				first uint64 // parity of the subject's sequences
			}
			var rs []resumer
			for i := range 48 {
				r := resumer{path: "/events/storm/a", pos: 100 + uint64(i%4)*37, first: 1}
				if i%3 == 0 {
					r.path, r.pos, r.first = "/events/storm/b", 50, 0
				}
				r.c = e.open(r.path, header("Last-Event-ID", strconv.FormatUint(r.pos, 10)))
				rs = append(rs, r)
			}
			published := make(chan error, 1)
			go func() {
				published <- publishChunked(e.js, more, func(i int) string { return subject(stored + i) }, func(i int) string { return payload(stored + i) })
			}()
			for _, r := range rs {
				for want := r.pos + 1; want <= stored+more; want++ {
					if want%2 != r.first {
						continue
					}
					ev := r.c.next()
					if ev.ID != strconv.FormatUint(want, 10) || ev.Data != seqPayload(int(want)) {
						t.Fatalf("%s from %d: got id %q data %q, want id %d", r.path, r.pos, ev.ID, ev.Data, want)
					}
				}
			}
			t.Logf("%v replays, %v events shared", e.metric("natsse_replays_total"), e.metric("natsse_replay_shared_events_total"))
			if n := e.metric("natsse_replays_total"); n > tc.maxReplays {
				t.Errorf("%v JetStream replays for %d resuming clients, want at most %v", n, len(rs), tc.maxReplays)
			}
			if n := e.metric("natsse_replay_shared_events_total"); n == 0 && tc.cacheBytes == 0 {
				t.Errorf("no replayed event was served from the replay cache")
			}
			if err := <-published; err != nil {
				t.Fatal(err)
			}
		})
	}
}
