package service_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsse/natsse/service"
)

// The payloads below are read back through ssetest, an EventSource parser
// written from the specification, so the parser, not the encoder, judges
// the framing (docs/protocol.md, "The stream").

func TestFramingPayloadLines(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/f", nil)
	tests := []struct {
		name, payload, want string
	}{
		{"one line", "hello", "hello"},
		{"LF", "a\nb\nc", "a\nb\nc"},
		{"CRLF", "a\r\nb\r\nc", "a\nb\nc"},
		{"CR", "a\rb\rc", "a\nb\nc"},
		{"mixed", "a\r\nb\rc\nd", "a\nb\nc\nd"},
		{"CR then LF apart", "a\r\rb\n\nc", "a\n\nb\n\nc"},
		{"trailing LF", "a\n", "a\n"},
		{"trailing CRLF", "a\r\n", "a\n"},
		{"only LF", "\n", "\n"},
		{"leading blank line", "\nx", "\nx"},
		{"empty", "", ""},
		{"field-like payload", "id: 99\nevent: reset\ndata: x\n\nretry: 1", "id: 99\nevent: reset\ndata: x\n\nretry: 1"},
		{"colon first", ": not a comment", ": not a comment"},
		{"leading space kept", " two  spaces ", " two  spaces "},
	}
	for _, tt := range tests {
		seq := e.publish("events.f", tt.payload)
		ev := c.next()
		if ev.ID != strconv.FormatUint(seq, 10) || !ev.HasData || ev.Data != tt.want || ev.Event != "" {
			t.Errorf("%s: payload %q: got id %q event %q data %q (has data %v), want id %d data %q",
				tt.name, tt.payload, ev.ID, ev.Event, ev.Data, ev.HasData, seq, tt.want)
		}
	}
}

func TestFramingLargePayload(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/big", nil)
	// The embedded server's max payload is 1 MiB, headers included: leave
	// some room for the JetStream headers.
	line := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	var b strings.Builder
	for b.Len()+len(line)+1 <= 1<<20-512 {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat("z", 1<<20-512-b.Len()))
	payload := b.String()
	seq := e.publish("events.big", payload)
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != payload {
		t.Fatalf("got id %q with %d bytes of data, want id %d with the %d bytes published", ev.ID, len(ev.Data), seq, len(payload))
	}
	// The stream goes on.
	seq = e.publish("events.big", "after")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "after" {
		t.Fatalf("got %+v, want id %d data after", ev, seq)
	}
	// And a resume replays it whole.
	r := e.open("/events/big", header("Last-Event-ID", "0"))
	if ev := r.next(); ev.ID != "1" || ev.Data != payload {
		t.Fatalf("resume: got id %q with %d bytes, want id 1 with %d", ev.ID, len(ev.Data), len(payload))
	}
}

// TestFramingInvalidUTF8 documents what natsse sends for a payload that is
// not UTF-8: each invalid byte becomes U+FFFD (one per byte, even for a
// truncated multi-byte sequence), valid text around it is unchanged, and the
// stream's framing stays intact.
func TestFramingInvalidUTF8(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/bin", nil)
	tests := []struct {
		payload, want string
	}{
		{"a\xffb", "a\uFFFDb"},
		{"\xc3(", "\uFFFD("},
		{"caf\xc3\xa9", "café"},
		{"\xe2\x82", "\uFFFD\uFFFD"},           // truncated 3-byte sequence: one per byte
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // UTF-16 surrogate
		{"\xff\n\xfe\r\nok", "\uFFFD\n\uFFFD\nok"},
		{"\x00\x01", "\x00\x01"}, // NUL and controls are valid UTF-8 and pass through
	}
	for _, tt := range tests {
		seq := e.publish("events.bin", tt.payload)
		if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != tt.want {
			t.Errorf("payload %q: got id %q data %q, want id %d data %q", tt.payload, ev.ID, ev.Data, seq, tt.want)
		}
	}
	seq := e.publish("events.bin", "next")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "next" {
		t.Fatalf("after invalid UTF-8: got %+v, want id %d data next", ev, seq)
	}
}

func TestFramingEventType(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/typed", nil)
	msg := func(event string) *nats.Msg {
		m := nats.NewMsg("events.typed")
		m.Data = []byte("payload of " + event)
		m.Header.Set("SSE-Event", event)
		return m
	}
	tests := []struct {
		header, want string
	}{
		{"order.created", "order.created"},
		{"reset", ""},   // natsse's own type: sent as a plain message
		{"expired", ""}, // idem
		{"Reset", "Reset"},
		{"with space", "with space"},
	}
	for _, tt := range tests {
		seq := e.publishMsg(msg(tt.header))
		ev := c.next()
		if ev.ID != strconv.FormatUint(seq, 10) || ev.Event != tt.want || ev.Data != "payload of "+tt.header {
			t.Errorf("SSE-Event %q: got id %q event %q data %q, want id %d event %q", tt.header, ev.ID, ev.Event, ev.Data, seq, tt.want)
		}
	}
	// A message without the header is a plain message.
	seq := e.publish("events.typed", "plain")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Event != "" || ev.Data != "plain" {
		t.Fatalf("got %+v, want id %d, no event, data plain", ev, seq)
	}
}

// TestFramingEventTypeLineBreaks checks that an SSE-Event value with line
// breaks cannot inject fields. (nats.go already turns CR and LF in header
// values into spaces; the encoder defends on its own too, see
// frame_internal_test.go.)
func TestFramingEventTypeLineBreaks(t *testing.T) {
	e := start(t, service.Config{})
	c := e.open("/events/inject", nil)
	for _, v := range []string{"a\r\nid: 999\r\n\r\ndata: evil", "a\nretry: 1", "a\rdata: evil"} {
		m := nats.NewMsg("events.inject")
		m.Header.Set("SSE-Event", v)
		m.Data = []byte("real")
		seq := e.publishMsg(m)
		ev := c.next()
		if ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "real" || ev.Retry != -1 || strings.ContainsAny(ev.Event, "\r\n") {
			t.Errorf("SSE-Event %q: got %+v, want id %d data real and one event line", v, ev, seq)
		}
		if !strings.HasPrefix(ev.Event, "a") {
			t.Errorf("SSE-Event %q: got event %q, want the value on one line", v, ev.Event)
		}
	}
	seq := e.publish("events.inject", "next")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "next" || ev.Event != "" {
		t.Fatalf("got %+v, want id %d data next", ev, seq)
	}
}
