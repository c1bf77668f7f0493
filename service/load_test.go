package service_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/natsse/natsse/service"
)

// publishInBackground publishes n messages while the test reads; the
// returned function waits for them and reports the first error. On an
// error it cuts the reading client off, so the test fails at once.
func (e *env) publishInBackground(c *client, n int, subject string, data func(i int) string) func() error {
	errc := make(chan error, 1)
	go func() {
		err := publishChunked(e.js, n, func(int) string { return subject }, data)
		if err != nil {
			c.cancel()
		}
		errc <- err
	}()
	return func() error { return <-errc }
}

// TestResumeUnderLoad: a client resumes from sequence 100 of 5,000 stored
// events while 20,000 more are published; it gets 101.. exactly once, in
// order, whether the position is in the ring, older than the ring, or older
// than the stream's first message.
func TestResumeUnderLoad(t *testing.T) {
	const stored, concurrent = 5_000, 20_000
	cases := []struct {
		name       string
		ringEvents int
		purgeTo    uint64 // first sequence kept, 0: none purged
		replay     bool   // the position is only in JetStream
	}{
		{"from the ring", 50_000, 0, false},
		{"older than the ring", 1_000, 0, true},
		{"older than the stream", 1_000, 1_000, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, service.Config{RingEvents: tc.ringEvents})
			e.publishMany(stored, func(int) string { return "events.load" }, func(i int) string { return seqPayload(i + 1) })
			waitFor(t, "the upstream to see every stored event", func() bool { return e.metric("natsse_upstream_events_total") == stored })
			from := uint64(101)
			if tc.purgeTo > 0 {
				e.purge(tc.purgeTo)
			}
			c := e.open("/events/load", header("Last-Event-ID", "100"))
			wait := e.publishInBackground(c, concurrent, "events.load", func(i int) string { return seqPayload(stored + 1 + i) })
			if tc.purgeTo > 0 {
				ev := c.next()
				want := fmt.Sprintf(`{"requested":100,"first":%d}`, tc.purgeTo)
				if ev.Event != "reset" || ev.Data != want || ev.ID != strconv.FormatUint(tc.purgeTo-1, 10) {
					t.Fatalf("got %+v, want event reset id %d data %s", ev, tc.purgeTo-1, want)
				}
				from = tc.purgeTo
			}
			for want := from; want <= stored+concurrent; want++ {
				ev := c.next()
				if ev.ID != strconv.FormatUint(want, 10) || ev.Data != seqPayload(int(want)) {
					t.Fatalf("got id %q data %q, want id %d data %s", ev.ID, ev.Data, want, seqPayload(int(want)))
				}
			}
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if got := e.metric("natsse_replays_total") > 0; got != tc.replay {
				t.Errorf("replayed from JetStream: %v, want %v", got, tc.replay)
			}
		})
	}
}

// TestFanOutOneSubject: 1,000 clients on one subject all get every event.
func TestFanOutOneSubject(t *testing.T) {
	const clients, events = 1_000, 20
	e := start(t, service.Config{})
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = e.open("/events/broadcast", nil)
	}
	e.publishMany(events, func(int) string { return "events.broadcast" }, func(i int) string { return seqPayload(i + 1) })
	for _, c := range cs {
		c.expectSeqs(1, events)
	}
	if n := e.streamConsumers(); n > 1 {
		t.Errorf("the stream has %d consumers serving %d clients, want 1", n, clients)
	}
}

// TestFanOutPerUser: 1,000 clients on 1,000 subjects each get only their own.
func TestFanOutPerUser(t *testing.T) {
	const users, perUser = 1_000, 2
	e := start(t, service.Config{})
	cs := make([]*client, users)
	for i := range cs {
		cs[i] = e.open(fmt.Sprintf("/events/users/%d", i), nil)
	}
	e.publishMany(users*perUser, func(i int) string { return fmt.Sprintf("events.users.%d", i%users) },
		func(i int) string { return fmt.Sprintf("user %d #%d", i%users, i/users) })
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for u, c := range cs {
		wg.Go(func() {
			for k := range perUser {
				ev, err := c.r.Next()
				want := fmt.Sprintf("user %d #%d", u, k)
				wantID := strconv.Itoa(k*users + u + 1)
				if err != nil || ev.Data != want || ev.ID != wantID {
					errs <- fmt.Errorf("user %d: got id %q %q (%v), want id %s %q", u, ev.ID, ev.Data, err, wantID, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.streamConsumers(); n > 1 {
		t.Errorf("the stream has %d consumers serving %d clients, want 1", n, users)
	}
}
