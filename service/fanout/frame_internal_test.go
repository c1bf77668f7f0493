package fanout

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/natsse/natsse/service/ssetest"
)

func TestAppendEventAllocs(t *testing.T) {
	tests := []struct {
		name, event, data string
	}{
		{"100 bytes", "", strings.Repeat("x", 100)},
		{"with event type", "order.created", strings.Repeat("x", 100)},
		{"lines", "", "a\nb\r\nc\rd\n"},
		{"invalid UTF-8", "", "a\xffb\xc3(\xe2\x82"},
		{"event type with line breaks", "a\r\nb", "x"},
		{"empty", "", ""},
	}
	buf := make([]byte, 0, 4096)
	for _, tt := range tests {
		data := []byte(tt.data)
		allocs := testing.AllocsPerRun(100, func() {
			buf = appendEvent(buf[:0], 1234567, tt.event, data)
		})
		if allocs != 0 {
			t.Errorf("%s: got %v allocations per event, want 0", tt.name, allocs)
		}
	}
}

// TestAppendEventParses reads what appendEvent writes with ssetest, an
// EventSource parser written from the specification.
func TestAppendEventParses(t *testing.T) {
	tests := []struct {
		event, data         string
		wantEvent, wantData string
	}{
		{"", "plain", "", "plain"},
		{"order.created", "a\r\nb\rc\nd", "order.created", "a\nb\nc\nd"},
		{"a\r\nid: 9\r\n\r\ndata: evil", "x", "a  id: 9    data: evil", "x"},
		{"a\rretry: 1", "x", "a retry: 1", "x"},
		{"caf\xc3\xa9\xff", "", "café\uFFFD", ""},
		{"", "\n", "", "\n"},
	}
	for _, tt := range tests {
		r := ssetest.NewReader(bytes.NewReader(appendEvent(nil, 7, tt.event, []byte(tt.data))))
		ev, err := r.Next()
		if err != nil || ev.ID != "7" || ev.Event != tt.wantEvent || ev.Data != tt.wantData || !ev.HasData || ev.Retry != -1 {
			t.Errorf("event %q data %q: got %+v (%v), want id 7 event %q data %q", tt.event, tt.data, ev, err, tt.wantEvent, tt.wantData)
			continue
		}
		if ev, err := r.Next(); err != io.EOF {
			t.Errorf("event %q data %q: got a second block %+v (%v), want one", tt.event, tt.data, ev, err)
		}
	}
}

func TestResetEventParses(t *testing.T) {
	r := ssetest.NewReader(bytes.NewReader(ResetEvent(3, 10, 4)))
	ev, err := r.Next()
	if err != nil || ev.ID != "3" || ev.Event != "reset" || ev.Data != `{"requested":10,"first":4}` {
		t.Fatalf("got %+v (%v), want id 3 event reset data {\"requested\":10,\"first\":4}", ev, err)
	}
}

// FuzzAppendEvent checks that any payload and event type give exactly one
// event, with every byte accounted for.
func FuzzAppendEvent(f *testing.F) {
	for _, seed := range []struct{ event, data string }{
		{"", ""}, {"", "x"}, {"t", "a\r\nb"}, {"a\nb", "\r\r\n\n"}, {"", "\xff\xfe"},
		{" lead", " data"}, {":", ": x"}, {"", "\xef\xbb\xbfbom"}, {"", "\x00"},
	} {
		f.Add(uint64(1), seed.event, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, seq uint64, event string, data []byte) {
		r := ssetest.NewReader(bytes.NewReader(appendEvent(nil, seq, event, data)))
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("event %q data %q: %v", event, data, err)
		}
		wantEvent := strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, perByte(event))
		wantData := strings.ReplaceAll(strings.ReplaceAll(perByte(string(data)), "\r\n", "\n"), "\r", "\n")
		if ev.ID != strconv.FormatUint(seq, 10) || ev.Event != wantEvent || ev.Data != wantData || !ev.HasData {
			t.Fatalf("event %q data %q: got %+v, want id %d event %q data %q", event, data, ev, seq, wantEvent, wantData)
		}
		if ev, err := r.Next(); err != io.EOF {
			t.Fatalf("event %q data %q: got a second block %+v (%v)", event, data, ev, err)
		}
	})
}

// perByte replaces each byte of s that is not part of valid UTF-8 with
// U+FFFD, as natsse documents.
func perByte(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// FuzzEnvelopeFromEvent: the envelope of a frame that did not keep the raw
// payload is the one the raw payload gives, byte for byte; and a plain
// payload (valid UTF-8, no \r) is held once, in the SSE bytes.
func FuzzEnvelopeFromEvent(f *testing.F) {
	for _, seed := range []string{"", "x", `{"a": 1,` + "\n" + ` "b": "c"}`, "a\nb\n", "\n\n", "a\r\nb", "\xff", "data: x", `"quoted"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		h := nats.Header{"SSE-Event": []string{"t"}, "K": []string{"v"}}
		got := NewFrame(9, "events.a", time.Unix(1, 2), h, []byte(data))
		want := NewFrame(9, "events.a", time.Unix(1, 2), h, []byte(data))
		want.raw = []byte(data)
		if !bytes.Equal(got.Bytes(true), want.Bytes(true)) {
			t.Fatalf("data %q: envelope %q, want %q", data, got.Bytes(true), want.Bytes(true))
		}
		if plain := utf8.ValidString(data) && !strings.Contains(data, "\r"); plain && got.raw != nil {
			t.Fatalf("data %q: raw payload kept beside the SSE bytes", data)
		}
	})
}
