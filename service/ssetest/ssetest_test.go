package ssetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ev builds an expected Event with data set.
func ev(id, data string) Event {
	e := Event{Data: data, HasData: true, Retry: -1}
	if id != "" {
		e.ID, e.HasID = id, true
	}
	return e
}

func TestReader(t *testing.T) {
	tests := []struct {
		name     string
		wire     string
		comments bool
		want     []Event
		wantErr  error // after the events
	}{
		{"lf", "id: 1\ndata: a\n\nid: 2\ndata: b\n\n", false,
			[]Event{ev("1", "a"), ev("2", "b")}, io.EOF},
		{"crlf", "id: 1\r\ndata: a\r\n\r\nid: 2\r\ndata: b\r\n\r\n", false,
			[]Event{ev("1", "a"), ev("2", "b")}, io.EOF},
		{"cr", "id: 1\rdata: a\r\rid: 2\rdata: b\r\r", false,
			[]Event{ev("1", "a"), ev("2", "b")}, io.EOF},
		{"mixed", "id: 1\r\ndata: a\rdata: b\n\r\ndata: c\r\n\n", false,
			[]Event{ev("1", "a\nb"), ev("", "c")}, io.EOF},
		{"cr cr lf is two line ends", "data: a\r\r\ndata: b\n\n", false,
			[]Event{ev("", "a"), ev("", "b")}, io.EOF},
		{"lf cr is two line ends", "data: a\n\rdata: b\n\n", false,
			[]Event{ev("", "a"), ev("", "b")}, io.EOF},
		{"multi-line data", "data: a\ndata:\ndata: c\n\n", false,
			[]Event{ev("", "a\n\nc")}, io.EOF},
		{"empty data", "data:\n\n", false,
			[]Event{ev("", "")}, io.EOF},
		{"data without colon", "data\n\n", false,
			[]Event{ev("", "")}, io.EOF},
		{"two data without colon", "data\ndata\n\n", false,
			[]Event{ev("", "\n")}, io.EOF},
		{"only one space removed", "data:  a \n\n", false,
			[]Event{ev("", " a ")}, io.EOF},
		{"no space", "data:a:b\n\n", false,
			[]Event{ev("", "a:b")}, io.EOF},
		{"tab kept", "data:\ta\n\n", false,
			[]Event{ev("", "\ta")}, io.EOF},
		{"event type", "event: reset\nid: 4\ndata: {}\n\n", false,
			[]Event{{ID: "4", HasID: true, Event: "reset", Data: "{}", HasData: true, Retry: -1}}, io.EOF},
		{"retry only", "retry: 200\n\nid: 1\ndata: a\n\n", false,
			[]Event{{Retry: 200}, ev("1", "a")}, io.EOF},
		{"retry with data", "retry: 5\ndata: a\n\n", false,
			[]Event{{Retry: 5, Data: "a", HasData: true}}, io.EOF},
		{"invalid retry ignored", "retry: 2s\n\nretry: -1\n\nretry:\n\nretry: 1 \n\ndata: a\nretry: x\n\n", false,
			[]Event{ev("", "a")}, io.EOF},
		{"last retry wins", "retry: 1\nretry: 2\nretry: z\n\n", false,
			[]Event{{Retry: 2}}, io.EOF},
		{"id only", "id: 7\n\n", false,
			[]Event{{ID: "7", HasID: true, Retry: -1}}, io.EOF},
		{"empty id", "id\n\n", false,
			[]Event{{HasID: true, Retry: -1}}, io.EOF},
		{"id with NUL ignored", "id: 1\x002\ndata: a\n\n", false,
			[]Event{ev("", "a")}, io.EOF},
		{"unknown field ignored", "foo: bar\n\nDATA: x\n\n data: y\n\ndata: z\nfoo: bar\n\n", false,
			[]Event{ev("", "z")}, io.EOF},
		{"comments skipped", ":\n\n: ping\n\ndata: a\n\n", false,
			[]Event{ev("", "a")}, io.EOF},
		{"comment-only blocks returned", ":\n\n: ping\n\n", true,
			[]Event{{Retry: -1, Comments: []string{""}}, {Retry: -1, Comments: []string{" ping"}}}, io.EOF},
		{"comment inside a block", ": hi\ndata: a\n:x\n\n", false,
			[]Event{{Data: "a", HasData: true, Retry: -1, Comments: []string{" hi", "x"}}}, io.EOF},
		{"comment not a field", ":data: a\n\n", false,
			nil, io.EOF},
		{"blank lines only", "\n\r\n\r\n\n", false,
			nil, io.EOF},
		{"empty stream", "", false,
			nil, io.EOF},
		{"missing final blank line", "data: a\n\ndata: b\n", false,
			[]Event{ev("", "a")}, io.ErrUnexpectedEOF},
		{"missing final line end", "data: a\n\ndata: b", false,
			[]Event{ev("", "a")}, io.ErrUnexpectedEOF},
		{"missing blank line after comment", "data: a\n\n: ping\n", false,
			[]Event{ev("", "a")}, io.ErrUnexpectedEOF},
		{"bom", "\xEF\xBB\xBFdata: a\n\n", false,
			[]Event{ev("", "a")}, io.EOF},
		{"only one bom", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", false,
			[]Event{ev("", "b")}, io.EOF},
		{"bom later is data", "data: \xEF\xBB\xBFa\n\n", false,
			[]Event{ev("", "\uFEFFa")}, io.EOF},
		{"lone bom prefix", "\xEF\n\n", false,
			nil, io.EOF},
		{"invalid utf-8 replaced", "data: a\xffb\xE2\x82c\xF0\x9F\x98\n\n", false,
			[]Event{ev("", "a\uFFFDb\uFFFDc\uFFFD")}, io.EOF},
		{"surrogate bytes replaced one by one", "data: \xED\xA0\x80\n\n", false,
			[]Event{ev("", "\uFFFD\uFFFD\uFFFD")}, io.EOF},
		{"valid utf-8 kept", "data: é€😀\n\n", false,
			[]Event{ev("", "é€😀")}, io.EOF},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"byte by byte", iotest.OneByteReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := NewReader(rd.wrap(strings.NewReader(tt.wire)))
				r.ReadComments = tt.comments
				var got []Event
				var err error
				for {
					var e Event
					if e, err = r.Next(); err != nil {
						break
					}
					got = append(got, e)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("events of %q:\ngot  %+v\nwant %+v", tt.wire, got, tt.want)
				}
				if err != tt.wantErr {
					t.Errorf("error at the end of %q: got %v, want %v", tt.wire, err, tt.wantErr)
				}
			})
		}
	}
}

func TestReaderLongLine(t *testing.T) {
	payload := strings.Repeat("x", 1<<20)
	wire := "id: 1\ndata: " + payload + "\r\n\r\nid: 2\ndata: b\n\n"
	r := NewReader(strings.NewReader(wire))
	e, err := r.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if e.ID != "1" || e.Data != payload {
		t.Errorf("got id %q and %d bytes of data, want id 1 and %d bytes", e.ID, len(e.Data), len(payload))
	}
	if e, err = r.Next(); err != nil || e.ID != "2" || e.Data != "b" {
		t.Errorf("after the long line: got %+v, %v, want id 2 data b", e, err)
	}
}

func TestReaderLastEventID(t *testing.T) {
	r := NewReader(strings.NewReader("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"))
	for _, want := range []string{"1", "1", ""} {
		if _, err := r.Next(); err != nil {
			t.Fatalf("Next: %v", err)
		}
		if got := r.LastEventID(); got != want {
			t.Errorf("LastEventID: got %q, want %q", got, want)
		}
	}
}

func TestReaderLastEventIDCutOff(t *testing.T) {
	r := NewReader(strings.NewReader("id: 1\ndata: a\n\nid: 2\ndata: b\n"))
	if _, err := r.Next(); err != nil {
		t.Fatalf("Next: %v", err)
	}
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Next: got %v, want io.ErrUnexpectedEOF", err)
	}
	if got := r.LastEventID(); got != "1" {
		t.Errorf("LastEventID after a cut-off block: got %q, want 1", got)
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)))
	if e, err := r.Next(); err != nil || e.Data != "a" {
		t.Fatalf("got %+v, %v, want data a", e, err)
	}
	if _, err := r.Next(); err != boom {
		t.Errorf("got %v, want the read error", err)
	}
}

// TestDial checks that Dial sends what an EventSource sends and that events
// arrive while the response is still open.
func TestDial(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 100\n\nid: 1\ndata: %s|%s|%s\n\n",
			r.Header.Get("Accept"), r.Header.Get("Cache-Control"), r.Header.Get("Last-Event-ID"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "id: 2\ndata: end\n\n")
	}))
	defer srv.Close()
	defer close(release)

	resp, r, err := Dial(t.Context(), srv.URL, http.Header{"Last-Event-Id": {"41"}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status: got %d, want 200", resp.StatusCode)
	}
	e, err := r.Next()
	if err != nil || e.Retry != 100 {
		t.Fatalf("first block: got %+v, %v, want retry 100", e, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e, err = r.Next()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not arrive while the response was open")
	}
	if want := "text/event-stream|no-cache|41"; err != nil || e.Data != want {
		t.Errorf("first event: got %+v, %v, want data %q", e, err, want)
	}
}

func TestDialError(t *testing.T) {
	if _, _, err := Dial(t.Context(), "http://[::1", nil); err == nil {
		t.Error("Dial of a malformed URL: got no error")
	}
}

// Next must return an event as soon as its blank line is read, without
// waiting for more input (a '\r' line end must not wait for a possible '\n').
func TestReaderNoReadAhead(t *testing.T) {
	for _, wire := range []string{"data: a\n\n", "data: a\r\r", "data: a\r\n\r\n", "\xEF\xBB\xBFdata: a\r\r"} {
		pr, pw := io.Pipe()
		r := NewReader(pr)
		got := make(chan string, 1)
		go func() {
			e, _ := r.Next()
			got <- e.Data
			_, _ = io.Copy(io.Discard, pr)
		}()
		w := bufio.NewWriter(pw)
		_, _ = w.WriteString(wire)
		_ = w.Flush()
		select {
		case d := <-got:
			if d != "a" {
				t.Errorf("%q: got data %q, want a", wire, d)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%q: Next did not return while the stream stayed open", wire)
		}
		pw.Close()
	}
}

// FuzzReader checks that the Reader never panics and that how the input is
// cut into reads changes nothing.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"id: 1\ndata: a\n\n", "data: a\r\n\r\n", "data: a\r\rdata\r\r", "\xEF\xBB\xBF:x\n\n",
		"retry: 200\n\n", "data: a\xff\xE2\x82\n\n", "data: a\n\ndata: b", "event: reset\nid\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wire string) {
		read := func(r io.Reader) (out []Event, err error) {
			rd := NewReader(r)
			rd.ReadComments = true
			for {
				e, err := rd.Next()
				if err != nil {
					return out, err
				}
				out = append(out, e)
			}
		}
		whole, err1 := read(strings.NewReader(wire))
		bytewise, err2 := read(iotest.OneByteReader(strings.NewReader(wire)))
		if !reflect.DeepEqual(whole, bytewise) || err1 != err2 {
			t.Errorf("%q: whole %+v, %v; byte by byte %+v, %v", wire, whole, err1, bytewise, err2)
		}
	})
}
