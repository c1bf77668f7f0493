package service_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

func TestHeartbeat(t *testing.T) {
	e := start(t, service.Config{Heartbeat: 300 * time.Millisecond})
	c := e.open("/events/idle", nil)
	c.r.ReadComments = true
	ev, err := c.r.Next()
	if err != nil || len(ev.Comments) == 0 || ev.HasData || ev.HasID || ev.Retry != -1 {
		t.Fatalf("got %+v (%v), want a comment block", ev, err)
	}
	// The stream still carries events after heartbeats.
	seq := e.publish("events.idle", "x")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "x" {
		t.Fatalf("got %+v, want id %d data x", ev, seq)
	}
}

// softRefused checks the soft refusal (docs/protocol.md, "The soft refusal"): 200, one retry block
// of Retry to 2×Retry, then the end of the stream.
func softRefused(t *testing.T, e *env, path string, retry time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	resp, r, err := ssetest.Dial(ctx, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("GET %s: got %d %q, want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ev, err := r.Next()
	if ms := int(retry.Milliseconds()); err != nil || ev.Retry < ms || ev.Retry > 2*ms || ev.HasData || ev.HasID {
		t.Fatalf("GET %s: got %+v (%v), want one retry block between %d and %d", path, ev, err, ms, 2*ms)
	}
	if ev, err := r.Next(); err != io.EOF {
		t.Fatalf("GET %s: after the retry block got %+v (%v), want the end of the stream", path, ev, err)
	}
}

func TestDrain(t *testing.T) {
	e := start(t, service.Config{})
	var cs []*client
	for range 3 {
		cs = append(cs, e.open("/events/drain", nil))
	}
	seq := e.publish("events.drain", "last")
	// Drain closes at once what it finds; the event must have reached
	// every stream by then.
	waitFor(t, "the event written to 3 streams", func() bool { return e.metric("natsse_events_delivered_total") >= 3 })
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	if err := e.svc.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	for i, c := range cs {
		if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "last" {
			t.Fatalf("stream %d: got %+v, want id %d data last", i, ev, seq)
		}
		if ev, err := c.r.Next(); err != io.EOF {
			t.Fatalf("stream %d: got %+v (%v), want the end of the stream", i, ev, err)
		}
	}
	if a := e.send(http.MethodGet, "/readyz", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while draining: got %d, want 503", a.status)
	}
	if a := e.send(http.MethodGet, "/healthz", nil); a.status != http.StatusOK {
		t.Errorf("GET /healthz while draining: got %d, want 200", a.status)
	}
	softRefused(t, e, "/events/drain", 2*time.Second)
	softRefused(t, e, "/events/drain?lastEventId=1", 2*time.Second)
	if got := e.metric("natsse_streams_open"); got != 0 {
		t.Errorf("natsse_streams_open: got %v, want 0", got)
	}
}

func TestMaxStreams(t *testing.T) {
	e := start(t, service.Config{MaxStreams: 1, Retry: 500 * time.Millisecond})
	first := e.open("/events/one", nil)
	softRefused(t, e, "/events/one", 500*time.Millisecond)
	softRefused(t, e, "/sse?subject=events.other", 500*time.Millisecond)
	// The first stream is still open and served.
	seq := e.publish("events.one", "still here")
	if ev := first.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "still here" {
		t.Fatalf("got %+v, want id %d", ev, seq)
	}
	// Once it is gone, there is room again.
	first.close()
	waitFor(t, "the closed stream to be counted out", func() bool { return e.metric("natsse_streams_open") == 0 })
	again := e.open("/events/one", header("Last-Event-ID", "0"))
	again.expectSeqs(seq, seq)
}

func TestMaxStreamAge(t *testing.T) {
	e := start(t, service.Config{MaxStreamAge: 500 * time.Millisecond})
	const total = 40
	var got []uint64
	read := func(c *client) {
		t.Helper()
		for len(got) < total {
			ev, err := c.r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			if ev.HasData {
				n, _ := strconv.ParseUint(ev.ID, 10, 64)
				got = append(got, n)
			}
		}
	}
	c := e.open("/events/age", nil)
	e.publishMany(total/2, func(int) string { return "events.age" }, seqPayload)
	read(c) // only half was published: returns when the stream ends by itself
	e.publishMany(total/2, func(int) string { return "events.age" }, seqPayload)
	last := c.r.LastEventID()
	for len(got) < total {
		c := e.open("/events/age", header("Last-Event-ID", cmp.Or(last, "0")))
		read(c)
		last = cmp.Or(c.r.LastEventID(), last)
		c.close()
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("got ids %v, want 1 to %d once each, in order", got, total)
		}
	}
}

// metricSum adds up the series of a labelled metric on /metrics.
func (e *env) metricSum(name string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+"{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", name, err)
			}
			sum += f
		}
	}
	return sum
}

// TestStreamsEndedCountsFailedFirstWrite: a stream whose very first write
// fails is counted in natsse_streams_ended_total like any other. The fault
// is built in: a write timeout of 1ns has passed before any write, taken
// over (HTTP/1.1) or through net/http.
func TestStreamsEndedCountsFailedFirstWrite(t *testing.T) {
	for name, noHijack := range map[string]bool{"taken over": false, "net/http": true} {
		t.Run(name, func(t *testing.T) {
			e := start(t, service.Config{WriteTimeout: time.Nanosecond, NoHijack: noHijack})
			e.t = t
			const n = 5
			for range n {
				resp, err := http.Get(e.url + "/events/a")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			waitFor(t, "every stream ended", func() bool { return e.metric("natsse_streams_open") == 0 })
			started := e.metric(`natsse_stream_requests_total{outcome="stream"}`)
			if ended := e.metricSum("natsse_streams_ended_total"); started != n || ended != started {
				t.Errorf("%v streams started, %v counted as ended; want %d and %d", started, ended, n, n)
			}
		})
	}
}
