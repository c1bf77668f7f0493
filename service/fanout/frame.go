package fanout

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// headerEvent is the NATS header whose value becomes the SSE event type.
const headerEvent = "SSE-Event"

// Event types natsse sends itself; a message cannot impersonate them.
const (
	eventReset   = "reset"
	eventExpired = "expired"
)

// Frame is one stored message, encoded once and shared by every SSE stream
// that receives it. Seq and Subject are read-only.
//
// The payload is held once: the SSE bytes give it back exactly when it is
// valid UTF-8 without a carriage return (nearly always), so the raw bytes
// are kept only otherwise, for the envelope. Holding both doubled what the
// ring, the replay cache and every queue cost per event (docs/operations.md,
// "Limits").
type Frame struct {
	Seq     uint64 // the JetStream stream sequence: the event's id
	Subject string
	sse     []byte // the event as SSE bytes, ready to write
	size    int    // Size, counted once: every queue counts it per frame

	// What the JSON envelope needs; encoded on first use only.
	time     time.Time
	header   nats.Header
	raw      []byte // the payload, when sse cannot give it back; else nil
	envOnce  sync.Once
	envelope []byte
}

// Stored is when JetStream stored the message.
func (f *Frame) Stored() time.Time { return f.time }

// NewFrame encodes a message as an SSE event, once.
func NewFrame(seq uint64, subject string, t time.Time, header nats.Header, data []byte) *Frame {
	f := &Frame{Seq: seq, Subject: subject, time: t, header: header}
	f.sse = appendEvent(make([]byte, 0, eventSize(header, data)), seq, eventName(header), data)
	if bytes.IndexByte(data, '\r') >= 0 || !utf8.Valid(data) {
		f.raw = data
	}
	f.size = len(f.sse) + len(f.raw) + len(f.Subject) + 128
	return f
}

// Bytes returns the frame as written for an SSE stream that asked for the
// envelope or not.
func (f *Frame) Bytes(envelope bool) []byte {
	if !envelope {
		return f.sse
	}
	f.envOnce.Do(func() {
		f.envelope = appendEvent(nil, f.Seq, eventName(f.header), f.envelopeJSON())
	})
	return f.envelope
}

// Size is what the frame costs the ring, roughly.
func (f *Frame) Size() int {
	return f.size
}

// payload is the message's payload: raw, or read back from the data fields
// of sse, which are its lines (split on \n only, as it holds no \r).
func (f *Frame) payload() []byte {
	if f.raw != nil {
		return f.raw
	}
	var data []byte
	first := true
	for line := range bytes.Lines(f.sse) {
		value, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if !first {
			data = append(data, '\n')
		}
		first = false
		data = append(data, bytes.TrimSuffix(value, []byte("\n"))...)
	}
	return data
}

func eventName(h nats.Header) string {
	if h == nil {
		return ""
	}
	name := h.Get(headerEvent)
	if name == eventReset || name == eventExpired {
		return ""
	}
	return name
}

func eventSize(h nats.Header, data []byte) int {
	return 32 + len(eventName(h)) + len(data) + 8*bytes.Count(data, []byte{'\n'})
}

// appendEvent appends one SSE event to dst. Payload lines are split on \r\n,
// \n and \r; invalid UTF-8 becomes U+FFFD so the stream stays decodable; an
// empty payload is a single empty data field.
func appendEvent(dst []byte, seq uint64, event string, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '\n')
	if event != "" {
		dst = append(dst, "event: "...)
		dst = appendLine(dst, []byte(event), ' ')
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

// appendData writes data: fields, one per payload line.
func appendData(dst, data []byte) []byte {
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			dst = append(dst, "data: "...)
			dst = appendValid(dst, data)
			return append(dst, '\n')
		}
		dst = append(dst, "data: "...)
		dst = appendValid(dst, data[:i])
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// appendLine appends s with line breaks replaced, for one-line fields.
func appendLine(dst, s []byte, replacement byte) []byte {
	start := len(dst)
	dst = appendValid(dst, s)
	for i := start; i < len(dst); i++ {
		if dst[i] == '\r' || dst[i] == '\n' {
			dst[i] = replacement
		}
	}
	return dst
}

// appendValid appends s, replacing each invalid UTF-8 sequence with U+FFFD.
func appendValid(dst, s []byte) []byte {
	if utf8.Valid(s) {
		return append(dst, s...)
	}
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[:n]...)
		}
		s = s[n:]
	}
	return dst
}

// envelope is the JSON form of ?envelope=json.
type envelope struct {
	Subject string              `json:"subject"`
	Seq     uint64              `json:"seq"`
	Time    time.Time           `json:"time"`
	Headers map[string][]string `json:"headers"`
	Data    json.RawMessage     `json:"data"`
}

func (f *Frame) envelopeJSON() []byte {
	env := envelope{Subject: f.Subject, Seq: f.Seq, Time: f.time.UTC(), Headers: map[string][]string(f.header)}
	if env.Headers == nil {
		env.Headers = map[string][]string{}
	}
	data := f.payload()
	var compact bytes.Buffer
	if json.Valid(data) && json.Compact(&compact, data) == nil {
		env.Data = compact.Bytes()
	} else {
		s, _ := json.Marshal(string(appendValid(nil, data)))
		env.Data = s
	}
	out, err := json.Marshal(env)
	if err != nil { // only a header value with invalid UTF-8 gets here
		env.Headers = map[string][]string{}
		out, _ = json.Marshal(env)
	}
	return out
}

// ResetEvent tells a client that its position is gone; id moves its cursor
// to a valid place so that a reconnect does not repeat the reset.
func ResetEvent(id, requested, first uint64) []byte {
	b := []byte("id: ")
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nevent: reset\ndata: {\"requested\":"...)
	b = strconv.AppendUint(b, requested, 10)
	b = append(b, ",\"first\":"...)
	b = strconv.AppendUint(b, first, 10)
	return append(b, "}\n\n"...)
}

// ExpiredEvent tells the page that its token expired: it opens a new
// EventSource with a fresh token and lastEventId. There is no id line, so
// the client's position stays at the last event it got.
func ExpiredEvent(exp time.Time) []byte {
	return []byte("event: expired\ndata: {\"exp\":" + strconv.FormatInt(exp.Unix(), 10) + "}\n\n")
}

// RetryLine sets the client's reconnection delay.
func RetryLine(d time.Duration) []byte {
	return []byte("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n\n")
}

// Heartbeat is the comment line that keeps an idle SSE stream alive; it is
// shared, never modified.
var Heartbeat = []byte(":\n\n")
