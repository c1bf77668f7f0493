// Package ssetest is a Server-Sent Events client for tests: it reads a
// text/event-stream the way a browser's EventSource does (WHATWG HTML, "event
// stream interpretation"), written from the specification alone so that it
// checks natsse's encoder instead of sharing its mistakes. Patience bounds
// the tests' waits without a deadline a slow machine could miss.
package ssetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Event is one block of an event stream: the fields seen between two blank
// lines. Unlike a browser, which dispatches only blocks that set data, a
// Reader returns every block that had a field, so that retry-only blocks are
// visible too.
type Event struct {
	// ID is the value of the last valid id field of this block (an id
	// containing U+0000 is ignored, as browsers do); HasID says whether there
	// was one. An id field with an empty value sets HasID and resets the
	// browser's lastEventId to "".
	ID    string
	HasID bool
	// Event is the value of the last event field; "" means "message".
	Event string
	// Data is the values of the data fields joined with "\n"; HasData says
	// whether there was a data field at all, that is whether a browser would
	// dispatch this block (a single "data:" line is an event with Data "").
	Data    string
	HasData bool
	// Retry is the last valid retry field in milliseconds, -1 if none.
	Retry int
	// Comments holds the comment lines of the block, the text after the
	// leading ':' unchanged (": ping" gives " ping").
	Comments []string
}

// Reader reads events from an event stream.
type Reader struct {
	// ReadComments makes Next return blocks that hold only comments too;
	// by default they are skipped (their comments are lost).
	ReadComments bool

	br          *bufio.Reader
	started     bool   // the leading BOM, if any, was dropped
	skipLF      bool   // the previous line ended in '\r': a '\n' next belongs to it
	idBuffer    string // the last id field read, per the specification
	lastEventID string // idBuffer as of the last blank line
}

// NewReader returns a Reader that parses the event stream read from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// LastEventID is the id a browser would send as Last-Event-ID after the events
// returned so far: the last id field of a complete block, kept across blocks
// without one (an id in a block cut off by the end of the stream is not).
func (r *Reader) LastEventID() string { return r.lastEventID }

// Next returns the next block that set a field (or, with ReadComments, held a
// comment). At the end of the stream it returns io.EOF if the stream ended
// after a complete block, or io.ErrUnexpectedEOF if it ended inside a line or a
// block, whose fields are then discarded as the specification requires. Other
// read errors are returned as they are.
func (r *Reader) Next() (Event, error) {
	ev := Event{Retry: -1}
	var data []string
	pending := false // a line other than a blank one was read since the last block
	fields := false  // this block set a field
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && (pending || line != "") {
				err = io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if line == "" {
			r.lastEventID = r.idBuffer
			if fields || (r.ReadComments && len(ev.Comments) > 0) {
				if ev.HasData {
					ev.Data = strings.Join(data, "\n")
				}
				return ev, nil
			}
			// A blank line ends a block without fields: nothing to dispatch.
			ev, data, pending = Event{Retry: -1}, nil, false
			continue
		}
		pending = true
		if comment, ok := strings.CutPrefix(line, ":"); ok {
			ev.Comments = append(ev.Comments, comment)
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		fields = r.field(&ev, &data, name, value) || fields
	}
}

// field applies one field to the block and reports whether the field counts
// (unknown names and invalid values are ignored, as in a browser).
func (r *Reader) field(ev *Event, data *[]string, name, value string) bool {
	switch name {
	case "event":
		ev.Event = value
	case "data":
		*data = append(*data, value)
		ev.HasData = true
	case "id":
		if strings.ContainsRune(value, 0) {
			return false
		}
		ev.ID, ev.HasID = value, true
		r.idBuffer = value
	case "retry":
		ms, ok := parseDigits(value)
		if !ok {
			return false
		}
		ev.Retry = ms
	default:
		return false
	}
	return true
}

// parseDigits accepts only ASCII digits, as the specification does for retry
// (no sign, no space); values too large for an int are refused.
func parseDigits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' || n > (1<<31)/10 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

var bom = []byte("\xEF\xBB\xBF")

// readLine returns the next line without its end (CRLF, LF or CR), decoded as
// UTF-8 with replacement characters. At the end of the stream it returns the
// unterminated rest, if any, with io.EOF.
func (r *Reader) readLine() (string, error) {
	var line []byte
	for {
		buf, err := r.br.Peek(max(1, r.br.Buffered()))
		if len(buf) == 0 {
			return decodeUTF8(line), err
		}
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				_, _ = r.br.Discard(1)
				continue
			}
		}
		if !r.started {
			// One leading BOM is dropped; a first byte that may begin one
			// needs the next two to decide.
			if buf[0] == bom[0] {
				if b, _ := r.br.Peek(len(bom)); bytes.Equal(b, bom) {
					_, _ = r.br.Discard(len(bom))
				}
			}
			r.started = true
			continue
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			line = append(line, buf...)
			_, _ = r.br.Discard(len(buf))
			continue
		}
		line = append(line, buf[:i]...)
		r.skipLF = buf[i] == '\r'
		_, _ = r.br.Discard(i + 1)
		return decodeUTF8(line), nil
	}
}

// decodeUTF8 decodes b as the WHATWG "UTF-8 decode" does: every maximal
// invalid subpart becomes one U+FFFD. (Go's own conversions differ: they
// replace byte by byte, or whole runs.)
func decodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		c, n := utf8.DecodeRune(b)
		if c != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
		} else {
			sb.WriteRune(utf8.RuneError)
			n = invalidPrefix(b)
		}
		b = b[n:]
	}
	return sb.String()
}

// invalidPrefix returns the length of the maximal subpart of an ill-formed
// sequence at the start of b: a lead byte followed by the continuation bytes
// that could still have completed it (Unicode Table 3-7).
func invalidPrefix(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	need := 0
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	}
	n := 1
	for ; n <= need && n < len(b) && b[n] >= lo && b[n] <= hi; n++ {
		lo, hi = 0x80, 0xBF
	}
	return n
}

// Dial sends GET url with header (which may be nil) as an EventSource would:
// with "Accept: text/event-stream" and "Cache-Control: no-cache" unless header
// sets them. It checks nothing in the response, whatever its status: the
// caller does, and closes resp.Body. The stream ends when ctx is done.
func Dial(ctx context.Context, url string, header http.Header) (*http.Response, *Reader, error) {
	return DialWith(ctx, http.DefaultClient, url, header)
}

// DialWith is Dial through client: over TLS, HTTP/2, or from another local
// address.
func DialWith(ctx context.Context, client *http.Client, url string, header http.Header) (*http.Response, *Reader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("ssetest: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	for k, v := range header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("ssetest: %w", err)
	}
	return resp, NewReader(resp.Body), nil
}
