package service_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/embedded"
	"github.com/natsse/natsse/service"
)

// TestNATSRestart: connected mode against a nats-server on a TCP port that
// is stopped under open streams and while new streams are requested, then
// started again on the same store. No 5xx reaches a client, /readyz says
// 503 meanwhile, and every client ends with every event exactly once.
func TestNATSRestart(t *testing.T) {
	store := t.TempDir()
	ns := startTCP(t, store, "127.0.0.1:0")
	addr := ns.ClientURL()
	reconnecting := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.RetryOnFailedConnect(true)}
	nc, err := nats.Connect(addr, reconnecting...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// A two-event ring: resumes while NATS is down need JetStream.
	e := startOn(t, ns, nc, service.Config{RingEvents: 2, Heartbeat: 300 * time.Millisecond})
	pub, err := nats.Connect(addr, reconnecting...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	e.js, _ = jetstream.New(pub)

	live := e.open("/events/fault", nil)
	for i := 1; i <= 5; i++ {
		e.publish("events.fault", seqPayload(i))
	}
	live.expectSeqs(1, 5)

	ns.Shutdown()
	waitFor(t, "/readyz to say 503", func() bool { return status(t, e.url+"/readyz") == http.StatusServiceUnavailable })
	// Streams requested while NATS is down open (200, never 5xx).
	fromRing := e.open("/events/fault", header("Last-Event-ID", "4"))
	fromJetStream := e.open("/events/fault", header("Last-Event-ID", "1"))
	fresh := e.open("/events/fault", nil)

	startTCP(t, store, addr[len("nats://"):])
	waitFor(t, "/readyz to say 200", func() bool { return status(t, e.url+"/readyz") == http.StatusOK })
	for i := 6; i <= 10; i++ {
		e.publish("events.fault", seqPayload(i))
	}
	live.expectSeqs(6, 10)
	fromRing.expectSeqs(5, 10)
	fromJetStream.expectSeqs(2, 10)
	fresh.expectSeqs(6, 10)
}

// startTCP starts a nats-server listening on addr with the given store.
func startTCP(t *testing.T, store, addr string) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	var ns *embedded.Server
	var err error
	// The port was just released by the previous server: retry briefly.
	for range 50 {
		if ns, err = embedded.Start(ctx, embedded.Options{StoreDir: store, Listen: addr}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
