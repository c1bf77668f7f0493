package main

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCeilingEndToEnd runs the three parts together on loopback: an
// in-process JetStream server, the ceiling subscribed to it, clients on a
// literal subject and on wildcards, and the JetStream publisher. Every client
// must account for exactly what the plan sent to its subjects.
func TestCeilingEndToEnd(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}

	c := newCeiling()
	if _, err := c.subscribe(nc, "events.>"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go c.accept(ctx, ln)
	defer ln.Close()

	p := plan{Count: 300, Users: 7, Run: "e2e"}
	base, _ := url.Parse("http://" + ln.Addr().String())
	done := make(chan *summary, 1)
	go func() {
		s, err := runClients(clientsConfig{
			base: base, paths: []string{"/events/users/{i}", "/events/users/*", "/events/%3E", "/sse?subject=events.users.1&subject=events.users.2"},
			n: 20, plan: &p, duration: 20 * time.Second, connectTimeout: 5 * time.Second, linger: 200 * time.Millisecond,
			concurrency: 8, sources: 4, bufSize: 1024,
		})
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	for c.conns.Load() < 20 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // headers on their way: messages must still arrive
	if _, err := publish(ctx, publishConfig{natsURL: ns.ClientURL(), plan: p, size: 64, maxPending: 100, ackTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.FailNow()
	}
	// Clients 0,4,8,12,16 on users 0,4,1,5,2 get 43 each except users 0..5
	// (300 = 42*7 + 6): all get 43 but user 6. Wildcard clients get 300; the
	// /sse clients users 1 and 2: 86.
	want := uint64(5*43 + 5*300 + 5*300 + 5*86)
	if s.Connected != 20 || s.Complete != 20 || s.Expected != want || s.Received != want ||
		s.Lost+s.Duplicates+s.OutOfOrder+s.Unexpected+s.IDRegressions != 0 || s.Hist.Count != want {
		t.Fatalf("summary %+v", s)
	}
}
