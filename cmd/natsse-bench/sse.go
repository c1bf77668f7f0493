package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// The client side reads HTTP by hand: net/http's client costs a goroutine
// pair, a bufio.Reader and several allocations per event, which would make
// the load tool, not the server, the bottleneck at 10,000 clients on two
// cores. These decoders work on whatever slice a Read returned and copy only
// the bytes of a line or event that straddles two reads.

// eventHandler receives each dispatched SSE event. The slices are valid only
// during the call.
type eventHandler interface {
	event(id, typ, data []byte)
	comment()
}

// responseHead is the part of an HTTP response header the clients need.
type responseHead struct {
	status  int
	chunked bool
	ctype   string
}

// parseHead parses a complete response header block (up to and including the
// blank line) and returns its length, or n=0 when b does not yet hold it all.
func parseHead(b []byte) (h responseHead, n int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return h, 0, nil
	}
	n = end + 4
	lines := bytes.Split(b[:end], []byte("\r\n"))
	st := lines[0]
	if !bytes.HasPrefix(st, []byte("HTTP/1.")) || len(st) < 12 || st[8] != ' ' {
		return h, 0, fmt.Errorf("bad status line %q", st)
	}
	if h.status, err = strconv.Atoi(string(st[9:12])); err != nil {
		return h, 0, fmt.Errorf("bad status line %q", st)
	}
	for _, l := range lines[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return h, 0, fmt.Errorf("bad header line %q", l)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			h.chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		case bytes.EqualFold(k, []byte("Content-Type")):
			h.ctype = string(v)
		}
	}
	return h, n, nil
}

// chunkDecoder decodes HTTP/1.1 chunked transfer-coding incrementally. Go's
// net/http server chunks every streamed response on HTTP/1.1.
type chunkDecoder struct {
	state int
	size  uint64 // of the chunk being read
	ndig  int
}

const (
	chSize    = iota // hex digits of the chunk size
	chExt            // chunk extension up to the line end
	chSizeLF         // after '\r' of the size line
	chData           // chunk data, size bytes left
	chDataCR         // '\r' after the data
	chDataLF         // '\n' after the data
	chTrailer        // trailer lines after the last chunk, at a line start
	chTrailerLine
	chDone
)

var errChunk = errors.New("malformed chunked encoding")

// decode passes the body bytes found in p to sink. done is true after the
// last chunk (the stream ended cleanly).
func (c *chunkDecoder) decode(p []byte, sink *sseParser) (done bool, err error) {
	for len(p) > 0 {
		switch c.state {
		case chSize:
			b := p[0]
			p = p[1:]
			switch {
			case b >= '0' && b <= '9':
				c.size = c.size<<4 | uint64(b-'0')
			case b >= 'a' && b <= 'f':
				c.size = c.size<<4 | uint64(b-'a'+10)
			case b >= 'A' && b <= 'F':
				c.size = c.size<<4 | uint64(b-'A'+10)
			case b == ';' || b == ' ' || b == '\t':
				c.state = chExt
				continue
			case b == '\r':
				c.state = chSizeLF
				continue
			default:
				return false, errChunk
			}
			if c.ndig++; c.ndig > 15 {
				return false, errChunk
			}
		case chExt:
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				p = p[i+1:]
				c.endSizeLine()
			} else {
				p = nil
			}
		case chSizeLF:
			if p[0] != '\n' || c.ndig == 0 {
				return false, errChunk
			}
			p = p[1:]
			c.endSizeLine()
		case chData:
			n := min(uint64(len(p)), c.size)
			if err := sink.feed(p[:n]); err != nil {
				return false, err
			}
			p = p[n:]
			if c.size -= n; c.size == 0 {
				c.state = chDataCR
			}
		case chDataCR, chDataLF:
			want := byte('\r')
			if c.state == chDataLF {
				want = '\n'
			}
			if p[0] != want {
				return false, errChunk
			}
			p = p[1:]
			if c.state++; c.state > chDataLF {
				c.state, c.size, c.ndig = chSize, 0, 0
			}
		case chTrailer:
			if p[0] == '\r' {
				p = p[1:]
				continue
			}
			if p[0] == '\n' {
				c.state = chDone
				return true, nil
			}
			c.state = chTrailerLine
		case chTrailerLine:
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				p = p[i+1:]
				c.state = chTrailer
			} else {
				p = nil
			}
		case chDone:
			return true, nil
		}
	}
	return c.state == chDone, nil
}

func (c *chunkDecoder) endSizeLine() {
	if c.size == 0 {
		c.state = chTrailer
	} else {
		c.state = chData
	}
}

// maxLine bounds a single SSE line, so a broken server cannot make a client
// grow without limit.
const maxLine = 1 << 20

// sseParser is an incremental parser of the text/event-stream format (WHATWG
// HTML §9.2.6): lines end with CRLF, LF or CR; "field: value" with one
// optional space; ":" comments; a blank line dispatches the event.
type sseParser struct {
	h      eventHandler
	line   []byte // a line straddling two feeds
	lastCR bool   // the previous feed ended in '\r' (a following '\n' belongs to it)
	lastID []byte
	typ    []byte
	data   []byte
	retry  int64
}

var (
	fieldData  = []byte("data")
	fieldID    = []byte("id")
	fieldEvent = []byte("event")
	fieldRetry = []byte("retry")
)

func (s *sseParser) feed(p []byte) error {
	for len(p) > 0 {
		if s.lastCR {
			s.lastCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := 0
		for i < len(p) && p[i] != '\n' && p[i] != '\r' {
			i++
		}
		if i == len(p) {
			if len(s.line)+len(p) > maxLine {
				return fmt.Errorf("SSE line longer than %d bytes", maxLine)
			}
			s.line = append(s.line, p...)
			return nil
		}
		l := p[:i]
		if len(s.line) > 0 {
			s.line = append(s.line, l...)
			l = s.line
		}
		s.lastCR = p[i] == '\r'
		p = p[i+1:]
		s.processLine(l)
		s.line = s.line[:0]
	}
	return nil
}

func (s *sseParser) processLine(l []byte) {
	if len(l) == 0 {
		s.dispatch()
		return
	}
	if l[0] == ':' {
		s.h.comment()
		return
	}
	name, value, found := bytes.Cut(l, []byte(":"))
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch {
	case bytes.Equal(name, fieldData):
		s.data = append(s.data, value...)
		s.data = append(s.data, '\n')
	case bytes.Equal(name, fieldID):
		if bytes.IndexByte(value, 0) < 0 {
			s.lastID = append(s.lastID[:0], value...)
		}
	case bytes.Equal(name, fieldEvent):
		s.typ = append(s.typ[:0], value...)
	case bytes.Equal(name, fieldRetry):
		if n, ok := atou(value); ok {
			s.retry = int64(n)
		}
	}
}

func (s *sseParser) dispatch() {
	if len(s.data) > 0 {
		s.h.event(s.lastID, s.typ, s.data[:len(s.data)-1])
	}
	s.data = s.data[:0]
	s.typ = s.typ[:0]
}
