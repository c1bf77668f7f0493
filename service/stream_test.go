package service_test

import (
	"testing"

	"github.com/natsse/natsse/service"
)

func TestLiveAndResume(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/demo", nil)
	for i := 1; i <= 3; i++ {
		e.publish("events.demo", seqPayload(i))
	}
	e.publish("events.other", "x")
	e.publish("events.demo", "m5")
	c.expectSeqs(1, 3)
	if ev := c.next(); ev.ID != "5" || ev.Data != "m5" {
		t.Fatalf("got %+v, want id 5 data m5", ev)
	}
	r := e.open("/events/demo", header("Last-Event-ID", "2"))
	r.expectSeqs(3, 3)
	if ev := r.next(); ev.ID != "5" {
		t.Fatalf("got %+v, want id 5", ev)
	}
}
