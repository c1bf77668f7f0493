package main

import (
	"fmt"
	"strings"
	"testing"
)

type recorder struct {
	events   []string
	comments int
}

func (r *recorder) event(id, typ, data []byte) {
	r.events = append(r.events, fmt.Sprintf("%s|%s|%s", id, typ, data))
}
func (r *recorder) comment() { r.comments++ }

// chunk encodes s in chunks of n bytes.
func chunk(s string, n int) string {
	var b strings.Builder
	for len(s) > 0 {
		k := min(n, len(s))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, s[:k])
		s = s[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// TestSSEChunkedSplits feeds the same stream in every split size through the
// chunk decoder, so lines, CRLFs and chunk headers straddle reads everywhere.
func TestSSEChunkedSplits(t *testing.T) {
	body := "retry: 2000\n\n: hb\n\nid: 1\ndata: a\n\nid: 2\r\nevent: reset\r\ndata: {\"x\":1}\r\n\r\nid: 3\rdata: l1\rdata: l2\r\rdata: no id\n\n"
	want := []string{"1||a", "2|reset|{\"x\":1}", "3||l1\nl2", "3||no id"}
	for _, cs := range []int{1, 3, 7, 1000} {
		wire := chunk(body, cs) + "trailing garbage is ignored after the end"
		for split := 1; split <= len(wire); split++ {
			r := &recorder{}
			p := &sseParser{h: r}
			var c chunkDecoder
			done := false
			for s := wire; len(s) > 0 && !done; {
				k := min(split, len(s))
				var err error
				done, err = c.decode([]byte(s[:k]), p)
				if err != nil {
					t.Fatalf("chunks %d split %d: %v", cs, split, err)
				}
				s = s[k:]
			}
			if !done || strings.Join(r.events, ",") != strings.Join(want, ",") || r.comments != 1 || p.retry != 2000 {
				t.Fatalf("chunks %d split %d: done %v events %q comments %d retry %d", cs, split, done, r.events, r.comments, p.retry)
			}
		}
	}
}

func TestChunkErrors(t *testing.T) {
	for _, wire := range []string{"zz\r\n", "3\r\nabcX", "\r\n"} {
		var c chunkDecoder
		if _, err := c.decode([]byte(wire), &sseParser{h: &recorder{}}); err == nil {
			t.Errorf("decode(%q): no error", wire)
		}
	}
}

func TestParseHead(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n5\r\n"
	h, n, err := parseHead([]byte(raw))
	if err != nil || h.status != 200 || !h.chunked || h.ctype != "text/event-stream; charset=utf-8" || raw[n:] != "5\r\n" {
		t.Fatalf("parseHead = %+v, %d, %v", h, n, err)
	}
	if _, n, err := parseHead([]byte("HTTP/1.1 200 OK\r\n")); n != 0 || err != nil {
		t.Errorf("partial head: n %d err %v", n, err)
	}
	if _, _, err := parseHead([]byte("FOO\r\n\r\n")); err == nil {
		t.Error("bad status line accepted")
	}
}

// TestSSEParserAllocs: steady-state parsing of events does not allocate.
func TestSSEParserAllocs(t *testing.T) {
	p := &sseParser{h: nopHandler{}}
	frame := []byte("id: 12345\ndata: r1 1 1 1700000000000000000 xxxxxxxxxxxxxxxxxxxxxxxxxx\n\n")
	_ = p.feed(frame)
	if n := testing.AllocsPerRun(1000, func() { _ = p.feed(frame[:20]); _ = p.feed(frame[20:]) }); n != 0 {
		t.Errorf("feed allocates %v per event", n)
	}
}

type nopHandler struct{}

func (nopHandler) event(id, typ, data []byte) {}
func (nopHandler) comment()                   {}
