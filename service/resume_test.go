package service_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsse/natsse/service"
)

// resetData is the data of a reset event.
type resetData struct {
	Requested uint64 `json:"requested"`
	First     uint64 `json:"first"`
}

func TestResumeQueryLastEventID(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 5; i++ {
		e.publish("events.r", seqPayload(i))
	}
	c := e.open("/events/r?lastEventId=2", nil)
	c.expectSeqs(3, 5)
	e.publish("events.r", "m6")
	c.expectSeqs(6, 6)
}

func TestResumePrecedence(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 5; i++ {
		e.publish("events.p", seqPayload(i))
	}
	tests := []struct {
		name, path string
		header     string // Last-Event-ID, if not empty
		first      uint64
	}{
		{"header over query", "/events/p?lastEventId=1", "3", 4},
		{"header over since", "/events/p?since=1h", "3", 4},
		{"query over since", "/events/p?lastEventId=2&since=1h", "", 3},
		{"header over query and since", "/events/p?lastEventId=1&since=1h", "4", 5},
	}
	for _, tt := range tests {
		var h = header()
		if tt.header != "" {
			h = header("Last-Event-ID", tt.header)
		}
		c := e.open(tt.path, h)
		if ev := c.next(); ev.ID != strconv.FormatUint(tt.first, 10) || ev.Event != "" {
			t.Errorf("%s: GET %s with Last-Event-ID %q: got first event %+v, want id %d", tt.name, tt.path, tt.header, ev, tt.first)
		}
		c.close()
	}
}

func TestResumeSinceTime(t *testing.T) {
	e := start(t, service.Config{})
	var times []time.Time
	for i := 1; i <= 6; i++ {
		seq := e.publish("events.s", seqPayload(i))
		times = append(times, e.storedTime(seq))
	}
	if !times[2].Before(times[3]) {
		t.Fatalf("messages 3 and 4 were stored at the same time %v: cannot tell them apart", times[3])
	}
	tests := []struct {
		since string
		first uint64
	}{
		{times[3].Format(time.RFC3339Nano), 4},                      // exactly message 4's time
		{times[2].Add(time.Nanosecond).Format(time.RFC3339Nano), 4}, // just after message 3
		{times[0].Format(time.RFC3339Nano), 1},
		{times[0].Add(-time.Hour).UTC().Format(time.RFC3339), 1}, // before the first: no reset
		{"2000-01-01T00:00:00Z", 1},
		{times[3].In(time.FixedZone("", 5*3600+30*60)).Format(time.RFC3339Nano), 4}, // another zone, same instant
	}
	for _, tt := range tests {
		c := e.open("/events/s?since="+strings.ReplaceAll(tt.since, "+", "%2B"), nil)
		for want := tt.first; want <= 6; want++ {
			if ev := c.next(); ev.ID != strconv.FormatUint(want, 10) || ev.Event != "" {
				t.Fatalf("since=%s: got %+v, want id %d", tt.since, ev, want)
			}
		}
		c.close()
	}
	// After the replay, live messages follow.
	c := e.open("/events/s?since="+times[4].Format(time.RFC3339Nano), nil)
	c.expectSeqs(5, 6)
	e.publish("events.s", "m7")
	c.expectSeqs(7, 7)
}

func TestResumeSinceDuration(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 3; i++ {
		e.publish("events.d", seqPayload(i))
	}
	t3 := e.storedTime(3)
	// A duration reaches back from the moment of the request, which is not
	// known exactly: leave a gap after message 3 larger than the margin
	// allowed for the request's latency. The clock has no event to await.
	const gap, margin = 600 * time.Millisecond, 300 * time.Millisecond
	waitFor(t, "the clock to pass message 3's time by the gap", func() bool { return time.Since(t3) > gap })
	for i := 4; i <= 6; i++ {
		e.publish("events.d", seqPayload(i))
	}
	t4 := e.storedTime(4)

	// since reaches back to margin before message 4: the server's "now" is
	// later than ours by the request's latency, which only moves the start
	// towards message 4, and margin < gap keeps it after message 3.
	d := time.Since(t4) + margin
	c := e.open(fmt.Sprintf("/events/d?since=%dms", d.Milliseconds()), nil)
	c.expectSeqs(4, 6)
	e.publish("events.d", "m7")
	c.expectSeqs(7, 7)

	// A duration reaching before the first message starts there, no reset.
	c = e.open("/events/d?since=1h", nil)
	if ev := c.next(); ev.ID != "1" || ev.Event != "" {
		t.Fatalf("since=1h: got %+v, want id 1 and no reset", ev)
	}
	c.expectSeqs(2, 7)

	// since=0s starts now: stored messages are skipped, new ones come.
	c = e.open("/events/d?since=0s", nil)
	e.publish("events.d", "m8")
	c.expectSeqs(8, 8)
}

func TestResumeBeyondLast(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 3; i++ {
		e.publish("events.b", seqPayload(i))
	}
	c := e.open("/events/b", header("Last-Event-ID", "10"))
	ev := c.next()
	var got resetData
	err := json.Unmarshal([]byte(ev.Data), &got)
	if ev.Event != "reset" || ev.ID != "3" || err != nil || got != (resetData{Requested: 10, First: 1}) {
		t.Fatalf("got %+v (%v), want event reset, id 3, data {requested:10, first:1}", ev, err)
	}
	if ev.Data != `{"requested":10,"first":1}` {
		t.Errorf("got data %q, want {\"requested\":10,\"first\":1}", ev.Data)
	}
	// Stored messages are not replayed; new ones come.
	e.publish("events.b", "m4")
	c.expectSeqs(4, 4)

	// The reset's id is a valid position: reconnecting with it gives no
	// second reset.
	r := e.open("/events/b", header("Last-Event-ID", ev.ID))
	r.expectSeqs(4, 4)
}

func TestResumeBeyondLastEmptyStream(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/b", header("Last-Event-ID", "7"))
	ev := c.next()
	if ev.Event != "reset" || !ev.HasID || ev.ID != "0" || ev.Data != `{"requested":7,"first":1}` {
		t.Fatalf("got %+v, want event reset, id 0, data {\"requested\":7,\"first\":1}", ev)
	}
	e.publish("events.b", "m1")
	c.expectSeqs(1, 1)
}

// purged publishes 6 messages (4 on events.other) and purges below 4, so
// that the stream's first stored sequence is 4, on a subject the client
// does not ask for.
func purged(t *testing.T, cfg service.Config) *env {
	e := start(t, cfg)
	for i := 1; i <= 6; i++ {
		subject := "events.p"
		if i == 4 {
			subject = "events.other"
		}
		e.publish(subject, seqPayload(i))
	}
	// What the ring holds depends on what the upstream has seen.
	waitFor(t, "the upstream to see 6 messages", func() bool { return e.metric("natsse_upstream_events_total") >= 6 })
	e.purge(4)
	return e
}

func TestResumeBeforeFirst(t *testing.T) {
	t.Run("from JetStream", func(t *testing.T) {
		// A one-event ring cannot cover the position: the resume reads
		// JetStream.
		testResumeBeforeFirst(t, purged(t, service.Config{RingEvents: 1}))
	})
	t.Run("from memory", func(t *testing.T) {
		testResumeBeforeFirst(t, purged(t, service.Config{}))
	})
}

func testResumeBeforeFirst(t *testing.T, e *env) {
	for _, n := range []uint64{0, 1, 2} {
		c := e.open("/events/p", header("Last-Event-ID", strconv.FormatUint(n, 10)))
		ev := c.next()
		want := fmt.Sprintf(`{"requested":%d,"first":4}`, n)
		if ev.Event != "reset" || ev.ID != "3" || ev.Data != want {
			t.Fatalf("Last-Event-ID %d: got %+v, want event reset, id 3, data %s", n, ev, want)
		}
		c.expectSeqs(5, 6) // 4 is on another subject
		c.close()
	}
	// n == first-1 and n >= first: nothing is missing, no reset.
	for _, n := range []uint64{3, 4} {
		c := e.open("/events/p", header("Last-Event-ID", strconv.FormatUint(n, 10)))
		if ev := c.next(); ev.ID != "5" || ev.Event != "" {
			t.Fatalf("Last-Event-ID %d: got %+v, want id 5 and no reset", n, ev)
		}
		c.close()
	}
	// A since before the first stored message starts there, no reset.
	c := e.open("/events/>?since=1h", nil)
	if ev := c.next(); ev.ID != "4" || ev.Event != "" {
		t.Fatalf("since=1h: got %+v, want id 4 and no reset", ev)
	}
	c.expectSeqs(5, 6)
}

func TestResumeOverlappingSubjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  service.Config
	}{{"ring", service.Config{}}, {"JetStream", service.Config{RingEvents: 1}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.cfg)
			const path = "/sse?subject=events.a.*&subject=events.>&subject=events.a.x"
			live := e.open(path, nil)
			e.publish("events.a.x", "1")
			e.publish("events.b", "2")
			e.publish("events.a.y", "3")
			e.publish("events.a.y.z", "4")
			live.expectSeqs(1, 4)
			resumed := e.open(path, header("Last-Event-ID", "0"))
			resumed.expectSeqs(1, 4)
			// A duplicate of 4 would come before 5.
			e.publish("events.a.x", "5")
			live.expectSeqs(5, 5)
			resumed.expectSeqs(5, 5)
		})
	}
}

// envelopeJSON is the data of an ?envelope=json event.
type envelopeJSON struct {
	Subject string              `json:"subject"`
	Seq     uint64              `json:"seq"`
	Time    time.Time           `json:"time"`
	Headers map[string][]string `json:"headers"`
	Data    json.RawMessage     `json:"data"`
}

func TestEnvelopeJSON(t *testing.T) {
	e := start(t, service.Config{RingEvents: 1})
	c := e.open("/events/env/>?envelope=json", nil)
	tests := []struct {
		subject, payload string
		header           nats.Header
		wantData         string
	}{
		{"events.env.a", `{"a": 1, "b": [true, null]}`, nats.Header{"SSE-Event": {"order.created"}, "X-Foo": {"bar", "baz"}}, `{"a":1,"b":[true,null]}`},
		{"events.env.b", "{\n  \"multi\": \"line\"\n}\n", nil, `{"multi":"line"}`},
		{"events.env.c", "hello", nil, `"hello"`},
		{"events.env.c", "two\nlines", nil, `"two\nlines"`},
		{"events.env.c", "", nil, `""`},
		{"events.env.c", "42", nil, `42`},
		{"events.env.c", "<b>&</b>", nil, `"<b>&</b>"`},
		{"events.env.c", "a\xffb", nil, `"a\ufffdb"`},
	}
	var seqs []uint64
	for _, tt := range tests {
		m := nats.NewMsg(tt.subject)
		m.Data = []byte(tt.payload)
		for k, vs := range tt.header {
			for _, v := range vs {
				m.Header.Add(k, v)
			}
		}
		seqs = append(seqs, e.publishMsg(m))
	}
	check := func(c *client, how string) {
		t.Helper()
		for i, tt := range tests {
			ev := c.next()
			if ev.ID != strconv.FormatUint(seqs[i], 10) || strings.Contains(ev.Data, "\n") {
				t.Fatalf("%s: payload %q: got id %q data %q, want id %d and one line of data", how, tt.payload, ev.ID, ev.Data, seqs[i])
			}
			if want := tt.header.Get("SSE-Event"); ev.Event != want {
				t.Errorf("%s: payload %q: got event %q, want %q", how, tt.payload, ev.Event, want)
			}
			var got envelopeJSON
			if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
				t.Fatalf("%s: data %q: %v", how, ev.Data, err)
			}
			var gotData, wantData any
			_ = json.Unmarshal(got.Data, &gotData)
			_ = json.Unmarshal([]byte(tt.wantData), &wantData)
			if got.Subject != tt.subject || got.Seq != seqs[i] || !got.Time.Equal(e.storedTime(seqs[i])) || !reflect.DeepEqual(gotData, wantData) {
				t.Errorf("%s: got subject %q seq %d time %v data %s, want %q %d %v %s",
					how, got.Subject, got.Seq, got.Time, got.Data, tt.subject, seqs[i], e.storedTime(seqs[i]), tt.wantData)
			}
			if got.Headers == nil || len(got.Headers) != len(tt.header) {
				t.Errorf("%s: payload %q: got headers %v, want %v", how, tt.payload, got.Headers, tt.header)
			}
			for k, want := range tt.header {
				if strings.Join(got.Headers[k], ",") != strings.Join(want, ",") {
					t.Errorf("%s: header %s: got %q, want %q", how, k, got.Headers[k], want)
				}
			}
		}
	}
	check(c, "live")
	check(e.open("/events/env/>?envelope=json", header("Last-Event-ID", "0")), "replayed")

	// Without the envelope, the same messages are their payloads.
	plain := e.open("/events/env/>", header("Last-Event-ID", "0"))
	if ev := plain.next(); ev.Data != tests[0].payload || ev.Event != "order.created" {
		t.Fatalf("without envelope: got %+v, want the payload as is", ev)
	}
}

// TestSinceOutsideUnixNanos: since= before 1677 or after 2262 does not wrap
// around in JetStream's nanosecond times: the first returns everything
// stored, the second nothing stored, only what comes next.
func TestSinceOutsideUnixNanos(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 3; i++ {
		e.publish("events.a", seqPayload(i))
	}
	early := e.open("/events/a?since=1600-01-01T00:00:00Z", nil)
	early.expectSeqs(1, 3)
	late := e.open("/events/a?since=2300-01-01T00:00:00Z", nil)
	waitFor(t, "the late stream replayed", func() bool { return e.metric("natsse_streams_open") == 2 })
	e.publish("events.a", seqPayload(4))
	early.expectSeqs(4, 4)
	late.expectSeqs(4, 4)
}
