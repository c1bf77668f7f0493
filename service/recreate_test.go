package service_test

import (
	"context"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestStreamRecreated: the stream is deleted and natsse creates it again
// (NATSSE_STREAM_CREATE). Its sequences start over, so natsse closes the
// open streams; a client that comes back with its Last-Event-ID, now
// beyond the new stream's last sequence, gets a reset to 0 and then the
// new stream's events, and a new client gets them too.
func TestStreamRecreated(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/x", nil)
	for range 5 {
		e.publish("events.x", "old")
	}
	c.expectSeqs(1, 5)

	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if err := e.js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	// natsse notices, creates the stream again and closes the open stream.
	waitFor(t, "the open stream to be closed", func() bool { return e.metric("natsse_streams_open") == 0 })
	for {
		ev, err := c.r.Next()
		if err != nil {
			break
		}
		if ev.HasData || ev.HasID {
			t.Fatalf("got %+v on the old stream, want it closed", ev)
		}
	}
	waitFor(t, "natsse to serve the new stream", func() bool {
		_, err := e.js.Stream(ctx, "EVENTS")
		return err == nil && e.metric("natsse_ready") == 1
	})

	back := e.open("/events/x", header("Last-Event-ID", "5"))
	fresh := e.open("/events/x", nil)
	ev := back.next()
	if ev.Event != "reset" || ev.ID != "0" || ev.Data != `{"requested":5,"first":1}` {
		t.Fatalf("got %+v, want event reset id 0 data {\"requested\":5,\"first\":1}", ev)
	}
	e.publish("events.x", "new 1")
	e.publish("events.x", "new 2")
	back.expectSeqs(1, 2)
	fresh.expectSeqs(1, 2)
}
