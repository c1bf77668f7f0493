package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

// TestDurableContinuesWhereTheNameStopped: a client reads 50 of 100 events
// and leaves; a fresh client with the same name and no Last-Event-ID gets
// exactly 51..100. A new name starts like a request without a position.
func TestDurableContinuesWhereTheNameStopped(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 3; i++ {
		e.publish("events.d", "before the name existed")
	}
	// A new name starts at the newest event natsse has seen, like a request
	// without a position: wait until that is the third.
	waitFor(t, "the hub to see 3 messages", func() bool { return e.metric("natsse_upstream_events_total") == 3 })
	first := e.open("/events/d?durable=reader-1", nil)
	e.publishMany(50, func(int) string { return "events.d" }, seqPayload)
	first.expectSeqs(4, 53)
	first.close()

	e.publishMany(50, func(int) string { return "events.d" }, seqPayload)
	fresh := e.open("/events/d?durable=reader-1", nil)
	fresh.expectSeqs(54, 103)
	e.publish("events.d", "live")
	fresh.expectSeqs(104, 104)
}

// TestDurableExactAfterCatchUp: a client catching up through a new cursor
// reads thousands of events and leaves at once; the next connection with the
// name continues right after the last one, although the consumer's copies
// (and so its acks) may not have caught up yet.
func TestDurableExactAfterCatchUp(t *testing.T) {
	const events = 5_000
	e := start(t, service.Config{})
	e.publishMany(events, func(int) string { return "events.c" }, seqPayload)
	c := e.open("/events/c?durable=catchup&lastEventId=0", nil)
	c.expectSeqs(1, events)
	c.close()
	e.publish("events.c", "next")
	e.open("/events/c?durable=catchup", nil).expectSeqs(events+1, events+1)
}

// TestDurableTakeoverAcrossReplicas: a second connection with the same name,
// on another natsse serving the same NATS, closes the first and continues
// right after the last event the first one got.
func TestDurableTakeoverAcrossReplicas(t *testing.T) {
	a := start(t, service.Config{})
	nc, err := a.ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b := startOn(t, a.ns, nc, service.Config{})

	old := a.open("/events/t?durable=phone", nil)
	for i := 1; i <= 3; i++ {
		a.publish("events.t", seqPayload(i))
	}
	old.expectSeqs(1, 3)

	newer := b.open("/events/t?durable=phone", nil)
	old.expectEnd(10 * time.Second)
	a.publish("events.t", "m4")
	newer.expectSeqs(4, 4)
}

// expectEnd reads until the server ends the stream, failing when it does
// not within d.
func (c *client) expectEnd(d time.Duration) {
	c.t.Helper()
	timer := time.AfterFunc(d, c.cancel)
	defer timer.Stop()
	for {
		ev, err := c.r.Next()
		if err != nil {
			if !timer.Stop() {
				c.t.Fatalf("the stream was still open after %s", d)
			}
			return
		}
		if ev.HasData {
			c.t.Fatalf("got event %q (%q), want the stream to end", ev.ID, ev.Data)
		}
	}
}

// TestDurableSubjectsAreFixed: the same name with other subjects is 409;
// the same subjects in another order are the same cursor.
func TestDurableSubjectsAreFixed(t *testing.T) {
	e := start(t, service.Config{})
	e.open("/sse?subject=events.a&subject=events.b.>&durable=fixed", nil).close()
	e.open("/sse?subject=events.b.>&subject=events.a&durable=fixed", nil).close()
	for _, path := range []string{"/events/a?durable=fixed", "/sse?subject=events.a&subject=events.b.*&durable=fixed"} {
		e.expectProblem(path, http.StatusConflict, "fixed when it is created")
	}
}

// TestDurableLimit: beyond MaxDurables a new name is 429; an existing name
// still opens.
func TestDurableLimit(t *testing.T) {
	e := start(t, service.Config{MaxDurables: 2})
	e.open("/events/l?durable=one", nil).close()
	e.open("/events/l?durable=two", nil).close()
	e.expectProblem("/events/l?durable=three", http.StatusTooManyRequests, "NATSSE_MAX_DURABLES")
	e.open("/events/l?durable=one", nil)
}

func TestDurableBadName(t *testing.T) {
	e := start(t, service.Config{})
	for _, q := range []string{"durable=", "durable=a.b", "durable=a%20b", "durable=%C3%A4", "durable=" + strings.Repeat("x", 65), "durable=a&durable=b"} {
		e.expectProblem("/events/n?"+q, http.StatusBadRequest, "durable")
	}
	e.open("/events/n?durable="+strings.Repeat("x", 64), nil).close()
	e.open("/events/n?durable=Az09_-", nil).close()
}

// TestDurableLastEventIDWins: an explicit position beats the stored one and
// becomes the stored one.
func TestDurableLastEventIDWins(t *testing.T) {
	e := start(t, service.Config{Heartbeat: time.Hour}) // heartbeats would store the position too
	for i := 1; i <= 5; i++ {
		e.publish("events.w", seqPayload(i))
	}
	c := e.open("/events/w?durable=w&lastEventId=0", nil) // a new name with a position
	c.expectSeqs(1, 5)
	c.close()
	e.publish("events.other", "not the cursor's")

	c = e.open("/events/w?durable=w", header("Last-Event-ID", "2")) // stored: 5
	c.expectSeqs(3, 5)
	c.close()

	c = e.open("/events/w?durable=w", header("Last-Event-ID", "6")) // nothing follows 6
	waitFor(t, "the stored position to move to 6", func() bool { return e.cursorFloor("w") == 6 })
	c.close()

	e.publish("events.w", "m7")
	e.open("/events/w?durable=w", nil).expectSeqs(7, 7)
}

// cursorFloor is the stored position of an anonymous cursor: its consumer's
// ack floor.
func (e *env) cursorFloor(name string) uint64 { return e.cursorInfo(name).AckFloor.Stream }

// TestDurableExpires: the consumer stays while a client is connected, even
// past the TTL, and is removed once the cursor was unused for the TTL. A
// replica with another TTL applies its own to the names it opens.
func TestDurableExpires(t *testing.T) {
	long := start(t, service.Config{})
	long.open("/events/x?durable=brief", nil).close()
	nc, err := long.ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := startOn(t, long.ns, nc, service.Config{DurableTTL: time.Second})
	c := e.open("/events/x?durable=brief", nil)
	if ttl := e.cursorInfo("brief").Config.InactiveThreshold; ttl != time.Second {
		t.Fatalf("the consumer's InactiveThreshold is %s, want the TTL of the replica that opened it last, 1s", ttl)
	}
	exists := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := e.js.Consumer(ctx, "EVENTS", "natsse_anon_brief")
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	// Nothing to await here: the property is that nothing happens.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if !exists() {
			t.Fatal("the cursor's consumer expired while a client was connected")
		}
	}
	c.close()
	waitFor(t, "the unused cursor's consumer to be removed", func() bool { return !exists() })
}

// TestDurableAcksOnlyFlushedEvents: a client that stops reading is cut off
// by the write timeout; what natsse had flushed to its connection counts as
// delivered, the rest does not, so a fresh client with the name starts at
// or before the first event the old one did not fully receive, and then
// gets every event exactly once.
func TestDurableAcksOnlyFlushedEvents(t *testing.T) {
	const events, size = 400, 32 << 10 // 12.5 MiB: more than socket buffers hold
	e := start(t, service.Config{WriteTimeout: 500 * time.Millisecond})
	_, br := e.openStopped("/events/big?durable=slow")
	payload := strings.Repeat("x", size)
	e.publishMany(events, func(int) string { return "events.big" }, func(int) string { return payload })
	waitFor(t, "the stalled client to be cut off", func() bool { return e.metric("natsse_streams_open") == 0 })

	// Now read what reached the old client before natsse gave up.
	r := ssetest.NewReader(br)
	got := 0
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if ev.HasData {
			got++
		}
	}
	received, _ := strconv.Atoi(r.LastEventID())
	if got == 0 || received >= events {
		t.Fatalf("the old client received %d events up to %d; want some but not all %d", got, received, events)
	}

	e.publish("events.big", "after") // what a fresh client gets if everything was acked
	// The fresh client reads from another replica, without the short write
	// timeout.
	nc, err := e.ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	fresh := startOn(t, e.ns, nc, service.Config{}).open("/events/big?durable=slow", nil)
	ev := fresh.next()
	from, _ := strconv.Atoi(ev.ID)
	t.Logf("the old client received events up to %d; the fresh one starts at %d", received, from)
	if from < 2 || from > received+1 {
		t.Fatalf("the fresh client starts at %d; want after the flushed events, at most %d", from, received+1)
	}
	fresh.expectSeqs(uint64(from)+1, events+1)
}

// cursorInfo reads the consumer of an anonymous cursor.
func (e *env) cursorInfo(name string) *jetstream.ConsumerInfo {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, "EVENTS", "natsse_anon_"+name)
	if err != nil {
		e.t.Fatal(err)
	}
	return cons.CachedInfo()
}

// TestDurableAckFloorStaysAtTheFlush: while natsse cannot flush to a client
// that stopped reading, the stored position (the consumer's ack floor) stays
// at what was flushed, even though the durable has delivered the copies of
// later events: what a crash of natsse would leave behind.
func TestDurableAckFloorStaysAtTheFlush(t *testing.T) {
	const events, size = 400, 32 << 10 // 12.5 MiB: more than socket buffers hold
	e := start(t, service.Config{WriteTimeout: time.Hour})
	conn, _ := e.openStopped("/events/big?durable=stuck")
	payload := strings.Repeat("x", size)
	e.publishMany(events, func(int) string { return "events.big" }, func(int) string { return payload })
	var info *jetstream.ConsumerInfo
	waitFor(t, "the durable to deliver every copy it may", func() bool {
		info = e.cursorInfo("stuck")
		return info.Delivered.Stream == events || info.NumAckPending == 256
	})
	if info.AckFloor.Stream >= events/2 {
		t.Errorf("ack floor %d with a client that stopped reading (copies delivered up to %d); want what was flushed, a few MiB of %d MiB", info.AckFloor.Stream, info.Delivered.Stream, events*size>>20)
	}
	_ = conn.Close()
	waitFor(t, "the stream to end", func() bool { return e.metric("natsse_streams_open") == 0 })
}

// openStopped opens a stream, reads up to its retry line (the stream and its
// cursor are in place by then) and reads no more until told. Its receive
// buffer is small enough that natsse's writes block, and large enough that
// reading what is left later is quick.
func (e *env) openStopped(path string) (net.Conn, *bufio.Reader) {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(256 << 10); err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: natsse\r\n\r\n", path)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			e.t.Fatal(err)
		}
		if strings.HasPrefix(line, "retry:") {
			return conn, br
		}
	}
}

// expectProblem checks that path is refused with status and a problem
// detail that mentions want.
func (e *env) expectProblem(path string, status int, want string) {
	e.t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	ct := resp.Header.Get("Content-Type")
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != status || ct != "application/problem+json" || p.Status != status {
		e.t.Fatalf("GET %s: %d %s %+v (%v), want %d problem+json", path, resp.StatusCode, ct, p, err, status)
	}
	if !strings.Contains(p.Detail, want) {
		e.t.Errorf("GET %s: detail %q, want it to mention %q", path, p.Detail, want)
	}
}

// TestDurableScopedByToken: with auth on, a named cursor must be listed in
// the token's natsse.durable, and the same name used by two users is two
// cursors (else the second user's other subjects would be a 409).
func TestDurableScopedByToken(t *testing.T) {
	e := startSecret(t, service.Config{})
	token := func(sub, pattern string, durables ...string) string {
		return mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
			"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
			"natsse": map[string]any{"subscribe": []string{pattern}, "durable": durables},
		})
	}
	alice := token("alice", "events.users.alice.>", "inbox")
	bob := token("bob", "events.users.bob.>", "inbox")
	e.expectStatus("/events/users/alice/inbox?durable=inbox", bearer(alice), http.StatusOK)
	e.expectStatus("/events/users/bob/inbox?durable=inbox", bearer(bob), http.StatusOK)
	e.expectStatus("/events/users/alice/inbox?durable=other", bearer(alice), http.StatusForbidden)
	e.expectStatus("/events/users/alice/inbox?durable=inbox", bearer(token("alice", "events.users.alice.>")), http.StatusForbidden)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	for info := range e.stream(ctx).ListConsumers(ctx).Info() {
		if strings.HasPrefix(info.Name, "natsse_") { // not the upstream consumer
			names = append(names, info.Name)
		}
	}
	if len(names) != 2 || names[0] == names[1] || strings.Contains(strings.Join(names, " "), "anon") {
		t.Errorf("consumers %v, want two scoped cursors, one per user", names)
	}
}

// TestDurablePerClientAndCheapRefusal: one address creates at most
// MaxDurablesPerClient new anonymous names (429 naming the setting), while
// the names it has keep working; and once NATSSE_MAX_DURABLES is reached,
// refusals come from a count kept, not from listing every consumer per
// request (the list requests are seen on NATS itself).
func TestDurablePerClientAndCheapRefusal(t *testing.T) {
	e := start(t, service.Config{MaxDurablesPerClient: 2})
	e.open("/events/p?durable=one", nil).close()
	e.open("/events/p?durable=two", nil).close()
	e.expectProblem("/events/p?durable=three", http.StatusTooManyRequests, "NATSSE_MAX_DURABLES_PER_CLIENT")
	e.open("/events/p?durable=one", nil).close()

	full := start(t, service.Config{MaxDurables: 1})
	full.open("/events/f?durable=only", nil).close()
	var lists atomic.Int64
	sub, err := full.nc.Subscribe("$JS.API.CONSUMER.NAMES.EVENTS", func(*nats.Msg) { lists.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := full.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const refused = 20
	for i := range refused {
		full.expectProblem(fmt.Sprintf("/events/f?durable=more%d", i), http.StatusTooManyRequests, "NATSSE_MAX_DURABLES")
	}
	if err := full.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n > refused/4 {
		t.Errorf("%d refusals listed the stream's consumers %d times; want the count kept between them", refused, n)
	}
}
