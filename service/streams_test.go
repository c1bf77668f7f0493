package service_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
)

// startStreams starts NATS with the streams given (name → subjects),
// then natsse serving cfg.Streams, which it does not create.
func startStreams(t *testing.T, cfg service.Config, streams map[string]string) *env {
	t.Helper()
	ns := startNATS(t)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	for name, subjects := range streams {
		addStream(t, js, name, subjects)
	}
	cfg.WriteTimeout = testWriteTimeout(cfg.WriteTimeout)
	return serveEnv(t, ns, nc, cfg)
}

func addStream(t *testing.T, js jetstream.JetStream, name, subjects string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: strings.Split(subjects, ","), Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
}

// consumersOf counts the consumers on a stream right now.
func (e *env) consumersOf(name string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Consumers
}

// readyz returns /readyz's status and body.
func (e *env) readyz() (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.url + "/readyz")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// deleteStream deletes the stream name, and checks what its client c and
// a new request on path get: c's stream ends, /readyz (200, other streams
// served) names it missing, and path gets the soft refusal, not a 404 that
// would stop EventSource for good.
func (e *env) deleteStream(name string, c *client, path string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if err := e.js.DeleteStream(ctx, name); err != nil {
		e.t.Fatal(err)
	}
	for {
		if _, err := c.r.Next(); err != nil {
			break
		}
	}
	waitFor(e.t, "/readyz to name the missing stream", func() bool {
		code, body := e.readyz()
		return code == http.StatusOK && strings.Contains(body, "the stream "+name+" does not exist")
	})
	if !e.softRefused(path) {
		e.t.Errorf("a request for the deleted stream %s's subjects: want the soft refusal", name)
	}
}

// softRefused says whether a GET of path got the soft refusal: 200, a
// retry line and the end of the stream, no event.
func (e *env) softRefused(path string) bool {
	e.t.Helper()
	// A stream that opens instead must not hang the test.
	resp, err := (&http.Client{Timeout: patience()}).Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "retry:") && !strings.Contains(string(body), "data:")
}

// TestSeveralStreams: three streams behind one natsse. Each client gets
// the events of its own stream only, with that stream's sequences as ids;
// resume, reset and named cursors work per stream; a request across two
// streams is 400 naming them; each stream has at most one consumer of
// natsse's while read;
// one stream deleted while the others flow ends its clients, is named in
// /readyz, and is softly refused until it is back, when an old position
// gets a reset; the others are not disturbed.
func TestSeveralStreams(t *testing.T) {
	streams := map[string]string{"ORDERS": "orders.>", "CHAT": "chat.>", "AUDIT": "audit.>"}
	e := startStreams(t, service.Config{Streams: []string{"ORDERS", "CHAT", "AUDIT"}}, streams)
	waitFor(t, "every stream to be found", func() bool {
		code, body := e.readyz()
		return code == http.StatusOK && body == "ok"
	})

	orders := e.open("/orders/1", nil)
	chat := e.open("/chat/lobby", nil)
	audit := e.open("/audit/x", nil)
	// Interleaved: each stream's sequences run 1, 2, 3 on their own.
	for i := 1; i <= 3; i++ {
		if seq := e.publish("orders.1", "o"+strconv.Itoa(i)); seq != uint64(i) {
			t.Fatalf("ORDERS sequence %d, want %d", seq, i)
		}
		e.publish("chat.lobby", "c"+strconv.Itoa(i))
		e.publish("audit.x", "a"+strconv.Itoa(i))
	}
	for _, c := range []struct {
		c      *client
		prefix string
	}{{orders, "o"}, {chat, "c"}, {audit, "a"}} {
		for i := 1; i <= 3; i++ {
			ev := c.c.next()
			if ev.ID != strconv.Itoa(i) || ev.Data != c.prefix+strconv.Itoa(i) {
				t.Fatalf("got id %s data %q, want id %d data %s%d", ev.ID, ev.Data, i, c.prefix, i)
			}
		}
	}
	for _, name := range []string{"ORDERS", "CHAT", "AUDIT"} {
		if n := e.consumersOf(name); n != 1 {
			t.Errorf("stream %s has %d consumers while read, want 1", name, n)
		}
	}

	// Across two streams: 400 naming both. Captured by none: 404.
	e.expectProblem("/orders/1?subject=chat.lobby", http.StatusBadRequest, "in two streams (ORDERS and CHAT)")
	e.expectProblem("/orders/1?subject=chat.lobby", http.StatusBadRequest, "open one EventSource per stream")
	e.expectProblem("/sse?subject=%3E", http.StatusBadRequest, "reaches into the streams AUDIT and CHAT and ORDERS")
	e.expectProblem("/other/x", http.StatusNotFound, "is not served")

	// Per-stream resume and reset: CHAT's id 1 resumes at CHAT's 2.
	resumed := e.open("/chat/lobby", header("Last-Event-ID", "1"))
	if ev := resumed.next(); ev.ID != "2" || ev.Data != "c2" {
		t.Fatalf("resumed CHAT from 1: got id %s data %q, want id 2 data c2", ev.ID, ev.Data)
	}
	// A named cursor on CHAT: CHAT's ids, kept across connections.
	cursor := e.open("/chat/lobby?durable=lobby&lastEventId=1", nil)
	cursor.expectSeqs(2, 3)
	cursor.close()
	e.publish("chat.lobby", "c4")
	again := e.open("/chat/lobby?durable=lobby", nil)
	if ev := again.next(); ev.ID != "4" || ev.Data != "c4" {
		t.Fatalf("the named cursor of CHAT: got id %s data %q, want 4 c4", ev.ID, ev.Data)
	}
	if ev := chat.next(); ev.ID != "4" {
		t.Fatalf("CHAT: got id %s, want 4", ev.ID)
	}
	beyond := e.open("/orders/1", header("Last-Event-ID", "50"))
	if ev := beyond.next(); ev.Event != "reset" {
		t.Fatalf("ORDERS from 50 of 3: got %+v, want reset", ev)
	}

	// AUDIT deleted while the others flow.
	e.deleteStream("AUDIT", audit, "/audit/x")
	e.publish("orders.1", "o4")
	e.publish("chat.lobby", "c5")
	if ev := orders.next(); ev.ID != "4" || ev.Data != "o4" {
		t.Fatalf("ORDERS after AUDIT was deleted: got id %s data %q, want 4 o4", ev.ID, ev.Data)
	}
	if ev := chat.next(); ev.ID != "5" || ev.Data != "c5" {
		t.Fatalf("CHAT after AUDIT was deleted: got id %s data %q, want 5 c5", ev.ID, ev.Data)
	}

	// AUDIT back: an old position (3, beyond the new stream's end) gets a
	// reset, and new events flow.
	addStream(t, e.js, "AUDIT", "audit.>")
	waitFor(t, "/readyz to be ok again", func() bool {
		code, body := e.readyz()
		return code == http.StatusOK && body == "ok"
	})
	back := e.open("/audit/x", header("Last-Event-ID", "3"))
	if ev := back.next(); ev.Event != "reset" {
		t.Fatalf("AUDIT recreated, from 3: got %+v, want reset", ev)
	}
	e.publish("audit.x", "new1")
	if ev := back.next(); ev.ID != "1" || ev.Data != "new1" {
		t.Fatalf("AUDIT recreated: got id %s data %q, want 1 new1", ev.ID, ev.Data)
	}
}

// TestEveryStream: NATSSE_STREAM=* serves the streams with subjects of
// their own, skips a mirror, serves a stream created while running, and
// softly refuses one deleted.
func TestEveryStream(t *testing.T) {
	e := startStreams(t, service.Config{Streams: []string{"*"}}, map[string]string{"ORDERS": "orders.>"})
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS_COPY", Mirror: &jetstream.StreamSource{Name: "ORDERS"}}); err != nil {
		t.Fatal(err)
	}
	c := e.open("/orders/1", nil)
	e.publish("orders.1", "o1")
	if ev := c.next(); ev.ID != "1" {
		t.Fatalf("got %+v, want id 1", ev)
	}

	addStream(t, e.js, "CHAT", "chat.>")
	waitFor(t, "the new stream to be served", func() bool { return slices.Contains(e.svc.Subjects(), "chat.>") })
	chat := e.open("/chat/lobby", nil)
	e.publish("chat.lobby", "c1")
	if ev := chat.next(); ev.ID != "1" || ev.Data != "c1" {
		t.Fatalf("the new stream: got id %s data %q, want 1 c1", ev.ID, ev.Data)
	}
	_, body := e.readyz()
	if strings.Contains(body, "ORDERS_COPY") {
		t.Errorf("/readyz names the mirror: %q", body)
	}
	if n := e.consumersOf("ORDERS_COPY"); n != 0 {
		t.Errorf("the mirror has %d consumers, want none of natsse's", n)
	}

	// CHAT deleted: its client's stream ends, and its subjects get the
	// soft refusal (not a 404 that would stop EventSource for good).
	e.deleteStream("CHAT", chat, "/chat/lobby")
	// Still after the next two listings (each finds a new stream): a
	// stream deleted and added again keeps its clients.
	for _, later := range []string{"later1", "later2"} {
		addStream(t, e.js, strings.ToUpper(later), later+".>")
		waitFor(t, "a listing after the deletion", func() bool { return slices.Contains(e.svc.Subjects(), later+".>") })
	}
	if !e.softRefused("/chat/lobby") {
		t.Error("after the next listing, a request for the deleted stream's subjects: want the soft refusal")
	}
}

// TestUpstreamConsumerOnlyWhileRead: a stream nobody reads holds no
// consumer of natsse's; the first reader starts one, and it is deleted
// (not left for the server's inactivity threshold) once nobody read the
// stream for NATSSE_UPSTREAM_IDLE. A reader without a position after that
// starts at the stream's end; one with an old position gets what was
// stored meanwhile.
func TestUpstreamConsumerOnlyWhileRead(t *testing.T) {
	logs := &lockedBuffer{}
	e := start(t, service.Config{UpstreamIdle: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if n := e.streamConsumers(); n != 0 {
		t.Fatalf("nobody reads, yet the stream has %d consumers", n)
	}
	e.publish("events.a", "before")
	c := e.open("/events/a", nil)
	// The reader starts the consumer; it is there moments later.
	waitFor(t, "natsse_upstream_consuming to be 1 with a reader", func() bool { return e.metric(`natsse_upstream_consuming{stream="EVENTS"}`) == 1 })
	e.publish("events.a", "live")
	if ev := c.next(); ev.ID != "2" || ev.Data != "live" {
		t.Fatalf("got id %s data %q, want 2 live (not the event stored before the stream opened)", ev.ID, ev.Data)
	}
	if n := e.streamConsumers(); n != 1 {
		t.Errorf("one reader: %d consumers, want 1", n)
	}
	c.close()
	waitFor(t, "natsse to delete its upstream consumer", func() bool { return strings.Contains(logs.String(), "upstream consumer deleted") })
	if n := e.streamConsumers(); n != 0 {
		t.Errorf("after natsse deleted its consumer: %d consumers, want 0", n)
	}
	if n := e.metric(`natsse_upstream_consuming{stream="EVENTS"}`); n != 0 {
		t.Errorf("natsse_upstream_consuming without readers: %v, want 0", n)
	}

	e.publish("events.a", "while idle") // 3
	fresh := e.open("/events/a", nil)
	resumed := e.open("/events/a", header("Last-Event-ID", "2"))
	e.publish("events.a", "after") // 4
	if ev := fresh.next(); ev.ID != "4" || ev.Data != "after" {
		t.Fatalf("a new reader after idleness: got id %s data %q, want 4 after", ev.ID, ev.Data)
	}
	resumed.expectSeqs(3, 4)
	// The resumed reader's replay consumer goes once its replay is over;
	// the upstream consumer stays, alone.
	waitFor(t, "one consumer with readers again", func() bool { return e.streamConsumers() == 1 })
}

// TestSeveralStreamsSubjectsCheck: NATSSE_SUBJECTS outside every listed
// stream stops natsse with one line naming the variable, and so does a
// listed mirror (no subjects to route by); with * neither does.
func TestSeveralStreamsSubjectsCheck(t *testing.T) {
	ns := startNATS(t)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	addStream(t, js, "ORDERS", "orders.>")
	addStream(t, js, "CHAT", "chat.>")
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "COPY", Mirror: &jetstream.StreamSource{Name: "ORDERS"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		streams []string
		fail    bool
	}{{[]string{"ORDERS", "CHAT"}, true}, {[]string{"*"}, false}, {[]string{"CHAT", "COPY"}, true}} {
		logs := &lockedBuffer{}
		svc, err := service.New(service.Config{Streams: tc.streams, Subjects: []string{"chat.>", "billing.>"}, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { svc.Run(ctx) })
		if tc.fail {
			// The mirror is refused first; else billing.> outside both.
			want, what := "NATSSE_SUBJECTS: ", "billing.>"
			if slices.Contains(tc.streams, "COPY") {
				want, what = "NATSSE_STREAM: ", "COPY has no subjects of its own"
			}
			select {
			case err := <-svc.Failed():
				if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), what) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%v: got %q, want one line %s... %s", tc.streams, err, want, what)
				}
			case <-time.After(patience()):
				t.Error("natsse did not stop on NATSSE_SUBJECTS outside every stream")
			}
		} else {
			<-svc.Started()
			waitFor(t, "CHAT to be served", func() bool { return slices.Contains(svc.Subjects(), "chat.>") })
			if got := svc.Subjects(); slices.Contains(got, "orders.>") {
				t.Errorf("with NATSSE_SUBJECTS=chat.>,billing.> natsse serves %q, want chat.> only", got)
			}
			if warned := logs.String(); strings.Count(warned, "no stream holds anything") != 1 || !strings.Contains(warned, "subject=billing.>") {
				t.Errorf("want one warning, about billing.>; the log:\n%s", warned)
			}
		}
		cancel()
		wg.Wait()
	}
}
