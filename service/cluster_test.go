package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

// The cluster tests run natsse on three routed nats-servers with an R3
// stream (docs/protocol.md, "Operations": nothing lost across faults): clients stream while a publisher keeps
// publishing, a fault strikes midway, and every client must end with
// exactly the stored messages it asked for, in order, each once.

const (
	clusterEvents = 300 // messages published per test
	clusterWarmup = 100 // published before the fault, with every client live
	clusterMidway = 150 // acknowledged when the fault strikes
	clusterHealed = 225 // acknowledged when the fault heals
)

// clusterSubject spreads messages over two subjects of one wildcard and a
// third outside it.
func clusterSubject(i int) string {
	return [...]string{"events.orders.eu", "events.orders.us", "events.audit"}[i%3]
}

// clusterFollowers opens the clients every cluster test checks: two on one
// subject, one on a wildcard, one on two subjects.
func clusterFollowers(t *testing.T, replicas ...string) []*follower {
	eu := func(s string) bool { return s == "events.orders.eu" }
	return []*follower{
		follow(t, "/events/orders/eu", eu, replicas...),
		follow(t, "/events/orders/eu", eu, replicas...),
		follow(t, "/events/orders/%3E", func(s string) bool { return strings.HasPrefix(s, "events.orders.") }, replicas...),
		follow(t, "/sse?subject=events.orders.eu&subject=events.audit", func(s string) bool { return s != "events.orders.us" }, replicas...),
	}
}

// faultMidway puts a fault inside the publishing by construction: it
// publishes the warm-up messages and waits until every follower has them,
// publishes up to clusterMidway, strikes (fault returns once the fault is
// in effect), publishes up to clusterHealed, heals (when fault returned a
// heal), then publishes the rest. So part of the stream is stored while the
// fault lasts, however fast or slow the machine is. Then every follower
// must have exactly what the stream stored for it.
func faultMidway(t *testing.T, c *natsCluster, fs []*follower, fault func() (heal func())) {
	t.Helper()
	pub := &publisher{js: c.js}
	if err := pub.publishRange(0, clusterWarmup, clusterSubject, nil); err != nil {
		t.Fatal(err)
	}
	warm := c.storedMessages()
	for _, f := range fs {
		if err := f.awaitAll(warm, patience()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.publishRange(clusterWarmup, clusterMidway, clusterSubject, nil); err != nil {
		t.Fatal(err)
	}
	heal := fault()
	if err := pub.publishRange(clusterMidway, clusterHealed, clusterSubject, nil); err != nil {
		t.Fatal(err)
	}
	if heal != nil {
		heal()
	}
	if err := pub.publishRange(clusterHealed, clusterEvents, clusterSubject, nil); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	msgs := c.storedMessages()
	for _, f := range fs {
		if err := f.awaitAll(msgs, patience()); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d messages stored (%d during the fault, %d publish retries); every client had them %v after the last was acknowledged",
		len(msgs), clusterHealed-clusterMidway, pub.retries, time.Since(acked).Round(time.Millisecond))
	for _, f := range fs {
		gap, ended := f.longestSilence()
		how := "still silent"
		if ended != 0 {
			how = fmt.Sprintf("ended by event %d", ended)
		}
		t.Logf("%s: longest silence %v, %s", f.path, gap.Round(time.Millisecond), how)
		f.check(msgs)
	}
}

// TestClusterNodeLoss: a nats-server of the cluster goes away under
// natsse's open streams while messages are being published: the one natsse
// is connected to, the stream's leader, or one that is both (natsse's
// upstream consumer being elsewhere). natsse moves to the remaining servers,
// keeps its streams open, and every client gets every message exactly once,
// in order.
func TestClusterNodeLoss(t *testing.T) {
	cases := []struct {
		name            string
		connectTo, lose func(r clusterRoles) *natsNode
	}{
		{"natsse's server", other, other},
		{"the stream leader", other, streamLeader},
		{"natsse's server, the stream leader", streamLeader, streamLeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { nodeLoss(t, tc.connectTo, tc.lose) })
	}
}

// TestClusterMetaLeaderLoss: natsse's server is the JetStream meta leader,
// which must create the consumer natsse's upstream starts over with after
// its reconnect. Nothing is lost; delivery pauses for about 10s here
// (nats.go asks for the new consumer during the election, waits 10s for an
// answer that never comes, then asks again).
func TestClusterMetaLeaderLoss(t *testing.T) {
	nodeLoss(t, metaLeader, metaLeader)
}

// TestClusterUpstreamHostLoss: the server hosting natsse's upstream
// consumer (an R1 consumer, on any of the stream's servers) goes away while
// natsse stays connected elsewhere, so nothing tells natsse but the missing
// heartbeats. Nothing is lost; delivery pauses until nats.go notices them
// missing (10s with its defaults).
func TestClusterUpstreamHostLoss(t *testing.T) {
	nodeLoss(t, other, upstream)
}

func other(r clusterRoles) *natsNode        { return r.other }
func streamLeader(r clusterRoles) *natsNode { return r.streamLeader }
func metaLeader(r clusterRoles) *natsNode   { return r.metaLeader }
func upstream(r clusterRoles) *natsNode     { return r.upstream }

// nodeLoss starts a cluster whose servers have one role each, runs natsse
// on it connected first to connectTo, and loses the server lose names
// midway. natsse's upstream consumer lands on a random server of the
// stream, so natsse starts again until it is on the lost server only when
// that is the point: on another server than natsse's connection when the
// upstream's host is lost, elsewhere than the lost server otherwise.
func nodeLoss(t *testing.T, connectTo, lose func(r clusterRoles) *natsNode) {
	c := startCluster(t)
	c.createStream()
	roles := c.roles()
	// lose names the upstream's host if it names no one before natsse runs.
	losesUpstream := lose(roles) == nil
	var r *replica
	var lost *natsNode
	for attempt := 0; ; attempt++ {
		before := c.consumerHosts()
		r = c.serve(service.Config{}, connectTo(roles))
		roles.upstream = c.newConsumerHost(before)
		lost = lose(roles)
		placed := roles.upstream != lost
		if losesUpstream {
			placed = roles.upstream != connectTo(roles)
		}
		if placed {
			break
		}
		if attempt == 20 {
			t.Fatalf("natsse's upstream consumer was on %s 20 times in a row", lost.name)
		}
		r.kill()
	}
	if got := r.nc.ConnectedServerName(); got != connectTo(roles).name {
		t.Fatalf("natsse is connected to %s, want %s", got, connectTo(roles).name)
	}
	fs := clusterFollowers(t, r.url)

	faultMidway(t, c, fs, func() func() {
		t.Logf("natsse on %s, its upstream on %s, stream leader %s, meta leader %s: shutting down %s",
			connectTo(roles).name, roles.upstream.name, roles.streamLeader.name, roles.metaLeader.name, lost.name)
		lost.srv.Shutdown()
		lost.srv.WaitForShutdown()
		return nil
	})

	if lost == connectTo(roles) && r.nc.Stats().Reconnects == 0 {
		t.Errorf("natsse's connection never reconnected after its server %s was lost", lost.name)
	}
	if info := c.streamInfo(); info == nil || info.Cluster.Leader == "" || info.Cluster.Leader == lost.name {
		t.Errorf("stream info %+v: want a leader other than %s", info, lost.name)
	}
	// Clients may always come back with their Last-Event-ID, but a NATS
	// node going away is no reason to make every client reconnect at once.
	for _, f := range fs {
		if n := f.streamsOpened(); n != 1 {
			t.Errorf("%s: %d streams opened, want the first kept open", f.path, n)
		}
	}
}

// TestClusterReplicaKill: clients read from natsse A while messages are
// published; A dies at once, as with kill -9 (connections reset, no final
// flush); the clients reconnect to natsse B with their Last-Event-ID and get
// exactly the rest. Their reconnects are held until more has been published
// than B's tiny ring keeps, so their resumes replay from JetStream while
// live messages keep coming. A created the stream, with three replicas as
// configured.
func TestClusterReplicaKill(t *testing.T) {
	c := startCluster(t)
	a := c.serve(service.Config{StreamCreate: true, StreamReplicas: 3}, c.nodes[0])
	b := c.serve(service.Config{RingEvents: 8}, c.nodes[1])
	if info := c.streamInfo(); info == nil || info.Config.Replicas != 3 {
		t.Fatalf("stream natsse created: %+v, want 3 replicas", info)
	}
	c.waitReplicated()
	fs := clusterFollowers(t, a.url, b.url)

	faultMidway(t, c, fs, func() func() {
		for _, f := range fs {
			f.holdReconnects()
		}
		a.kill()
		return func() {
			for _, f := range fs {
				f.releaseReconnects()
			}
		}
	})

	for _, f := range fs {
		via := f.via()
		t.Logf("%s: %d streams opened, %d events from A, %d from B", f.path, f.streamsOpened(), via[a.url], via[b.url])
		if via[a.url] == 0 || via[b.url] == 0 {
			t.Errorf("%s: %d events from A and %d from B, want both: the client did not move", f.path, via[a.url], via[b.url])
		}
	}
	if n := (&env{t: t, url: b.url}).metric("natsse_replays_total"); n == 0 {
		t.Error("B replayed nothing from JetStream: the resumes did not take the path this test is for")
	}
}

// follower reads a stream the way a browser's EventSource does: when the
// stream ends it opens a new one with the last id it saw as Last-Event-ID,
// on the next replica in turn (a load balancer routing around a dead one).
// It starts at position 0, so it must get every stored message it wants.
type follower struct {
	t        *testing.T
	path     string
	wants    func(subject string) bool
	replicas []string
	hc       *http.Client

	mu      sync.Mutex
	got     []received
	last    string // Last-Event-ID of the next stream
	streams int
	notify  chan struct{} // closed and replaced on every event
	gate    chan struct{} // reconnects wait until it is closed
}

type received struct {
	seq  uint64
	data string
	via  string    // the replica that sent it
	at   time.Time // when it arrived
}

// follow starts a follower on path; it stops when the test ends.
func follow(t *testing.T, path string, wants func(subject string) bool, replicas ...string) *follower {
	t.Helper()
	tr := &http.Transport{}
	f := &follower{t: t, path: path, wants: wants, replicas: replicas, hc: &http.Client{Transport: tr}, last: "0", notify: make(chan struct{}), gate: closed()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); tr.CloseIdleConnections() })
	return f
}

func (f *follower) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		f.read(ctx, f.replicas[i%len(f.replicas)])
		f.mu.Lock()
		gate := f.gate
		f.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-gate:
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // EventSource's retry delay
		}
	}
}

// holdReconnects makes the follower wait, when its stream ends, until
// releaseReconnects.
func (f *follower) holdReconnects() {
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
}

func (f *follower) releaseReconnects() {
	f.mu.Lock()
	close(f.gate)
	f.mu.Unlock()
}

func closed() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// read follows one stream until it ends.
func (f *follower) read(ctx context.Context, base string) {
	f.mu.Lock()
	h := header("Last-Event-ID", f.last)
	f.streams++
	f.mu.Unlock()
	resp, r, err := ssetest.DialWith(ctx, f.hc, base+f.path, h)
	if err != nil {
		return // the replica is down: try the next
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Errorf("GET %s with Last-Event-ID %s: status %d, want 200", f.path, h.Get("Last-Event-ID"), resp.StatusCode)
		return
	}
	for {
		ev, err := r.Next()
		if err != nil {
			return
		}
		if ev.Event == "reset" {
			f.t.Errorf("%s: reset %s after id %s: the stream lost messages", f.path, ev.Data, h.Get("Last-Event-ID"))
		}
		if !ev.HasData {
			continue
		}
		seq, err := strconv.ParseUint(ev.ID, 10, 64)
		if err != nil {
			f.t.Errorf("%s: event id %q (data %q) is not a sequence", f.path, ev.ID, ev.Data)
			return
		}
		f.mu.Lock()
		f.got = append(f.got, received{seq: seq, data: ev.Data, via: base, at: time.Now()})
		f.last = ev.ID
		close(f.notify)
		f.notify = make(chan struct{})
		f.mu.Unlock()
	}
}

// await waits until the follower got an event with id seq or later.
func (f *follower) await(seq uint64, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		f.mu.Lock()
		n, ch := len(f.got), f.notify
		reached := n > 0 && f.got[n-1].seq >= seq
		var last uint64
		if n > 0 {
			last = f.got[n-1].seq
		}
		f.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("%s: no event %d within %s; the last was %d, after %d events", f.path, seq, d, last, n)
		}
	}
}

// awaitAll waits until the follower got the last of msgs it wants.
func (f *follower) awaitAll(msgs []stored, d time.Duration) error {
	want := f.filter(msgs)
	if len(want) == 0 {
		return errors.New(f.path + ": no stored message for it")
	}
	return f.await(want[len(want)-1].seq, d)
}

func (f *follower) filter(msgs []stored) []stored {
	var out []stored
	for _, m := range msgs {
		if f.wants(m.subject) {
			out = append(out, m)
		}
	}
	return out
}

// check holds what the follower got to exactly the stored messages it
// wants: each once, in order, with its payload.
func (f *follower) check(msgs []stored) {
	f.t.Helper()
	want := f.filter(msgs)
	f.mu.Lock()
	got := append([]received(nil), f.got...)
	f.mu.Unlock()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			f.t.Errorf("%s: got %d events, want %d: the first missing is %d", f.path, len(got), len(want), want[i].seq)
			return
		case i >= len(want):
			f.t.Errorf("%s: got %d events, want %d: the first extra is %d", f.path, len(got), len(want), got[i].seq)
			return
		case got[i].seq != want[i].seq || got[i].data != want[i].data:
			prev := "none"
			if i > 0 {
				prev = strconv.FormatUint(got[i-1].seq, 10)
			}
			f.t.Errorf("%s: event %d is id %d (data %q, via %s) after %s, want id %d (data %q)",
				f.path, i, got[i].seq, got[i].data, got[i].via, prev, want[i].seq, want[i].data)
			return
		}
	}
}

// via counts the events each replica sent.
func (f *follower) via() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, r := range f.got {
		n[r.via]++
	}
	return n
}

// longestSilence is the longest time the follower waited for its next
// event, and the id of the event that ended that wait (0: it still waits).
func (f *follower) longestSilence() (gap time.Duration, ended uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i < len(f.got); i++ {
		if d := f.got[i].at.Sub(f.got[i-1].at); d > gap {
			gap, ended = d, f.got[i].seq
		}
	}
	if n := len(f.got); n > 0 && time.Since(f.got[n-1].at) > gap {
		gap, ended = time.Since(f.got[n-1].at), 0
	}
	return gap, ended
}

func (f *follower) streamsOpened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}
