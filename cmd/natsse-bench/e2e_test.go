package main

import (
	"context"
	"net"
	"net/url"
	"strings"
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

// TestCeilingEndToEndStreams is S8's shape over three streams, small: user i
// on events<i mod 3>.users.<i> in stream S<i mod 3>, clients on their user,
// on their stream's users.* and on their stream's >, in two client processes'
// worth of clients merged; every stream's clients must account for exactly
// their stream's share.
func TestCeilingEndToEndStreams(t *testing.T) {
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
	for k := range 3 {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName(k), Subjects: []string{streamPrefix(k) + ".>"}}); err != nil {
			t.Fatal(err)
		}
	}

	c := newCeiling()
	if _, err := c.subscribeAll(nc, []string{"events0.>", "events1.>", "events2.>"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go c.accept(ctx, ln)
	defer ln.Close()

	p := plan{Count: 300, Users: 7, Streams: 3, Run: "e2e3"}
	base, _ := url.Parse("http://" + ln.Addr().String())
	paths := strings.Split(streamPaths("/events/users/{i},/events/users/*,/events/%3E"), ",")
	done := make(chan *summary, 2)
	for _, off := range []int{0, 9} {
		go func() {
			s, err := runClients(clientsConfig{
				base: base, paths: paths, n: 9, offset: off, plan: &p, duration: 20 * time.Second,
				connectTimeout: 5 * time.Second, linger: 200 * time.Millisecond, concurrency: 8, sources: 4, bufSize: 1024,
			})
			if err != nil {
				t.Error(err)
			}
			done <- s
		}()
	}
	for c.conns.Load() < 18 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := publish(ctx, publishConfig{natsURL: ns.ClientURL(), plan: p, size: 64, maxPending: 100, ackTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	a, b := <-done, <-done
	if a == nil || b == nil {
		t.FailNow()
	}
	s := mergeSummaries([]*summary{a, b})
	// 300 = 42*7 + 6: users 0..5 get 43, user 6 gets 42. S0 holds users
	// 0, 3, 6 (128 events), S1 users 1, 4 (86), S2 users 2, 5 (86). Client i
	// is on user i mod 7, in stream (i mod 7) mod 3, on path i mod 3.
	want := map[string]struct {
		clients  int
		expected uint64
	}{
		"S0": {8, 43 + 43 + 42 + 5*128}, // clients 0 3 6 (users) 7 10 13 (users.*) 14 17 (>)
		"S1": {5, 4*86 + 43},            // 1 4 (users.*) 8 11 (>) 15 (user 1)
		"S2": {5, 3*86 + 2*43},          // 2 5 16 (> and users.*) 9 12 (users 2 and 5)
	}
	var total uint64
	for name, w := range want {
		st := s.ByStream[name]
		if st == nil {
			t.Fatalf("no summary for stream %s: %+v", name, s.ByStream)
		}
		if st.Clients != w.clients || st.Complete != w.clients || st.Expected != w.expected || st.Received != w.expected ||
			st.Lost+st.Duplicates+st.OutOfOrder+st.Unexpected+st.IDRegressions != 0 || st.Hist.Count != w.expected {
			t.Errorf("stream %s: %+v, want %d clients and %d events", name, st, w.clients, w.expected)
		}
		total += w.expected
	}
	if len(s.ByStream) != 3 || s.Connected != 18 || s.Complete != 18 || s.Expected != total || s.Received != total || s.Hist.Count != total {
		t.Fatalf("summary %+v", s)
	}
}
