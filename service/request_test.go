package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

// answer is the start of a response: the whole body of a refusal, the first
// block of a stream.
type answer struct {
	status int
	header http.Header
	body   []byte
	first  ssetest.Event // a stream's first block
	err    error         // reading the first block
}

// send sends "method target HTTP/1.1" over a new connection, target byte
// for byte (a client would escape, clean or absolutise it: "//x" becomes
// "http://x"), and reads one response without following redirects; a
// stream is closed after its first block.
func (e *env) send(method, target string, h http.Header) answer {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.http.Listener.Addr().String(), 10*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, e.http.Listener.Addr())
	_ = h.Write(&b)
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		a.first, a.err = ssetest.NewReader(resp.Body).Next()
		conn.Close() // before resp.Body.Close, which would read to the end
		return a
	}
	a.body, err = io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return a
}

// problemDetail is an RFC 9457 body.
type problemDetail struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func TestRequestMalformed(t *testing.T) {
	e := start(t, service.Config{MaxSubjects: 3, MaxURLBytes: 300})
	long := "/events/" + strings.Repeat("a", 300)
	tests := []struct {
		name, target string
		header       http.Header
	}{
		{"escaped dot", "/events/a%2Eb", nil},
		{"escaped dot alone", "/events/%2E", nil},
		{"escaped dot lower case", "/events/a%2eb", nil},
		{"escaped slash", "/events/a%2Fb", nil},
		{"dot dot", "/events/a/../b", nil},
		{"dot dot last", "/events/..", nil},
		{"escaped dot dot", "/events/%2E%2E/b", nil},
		{"dot", "/events/./b", nil},
		{"dot last", "/events/.", nil},
		{"double slash", "/events//b", nil},
		{"leading double slash", "//events/b", nil},
		{"trailing slash", "/events/b/", nil},
		{"only prefix with slash", "/events/", nil},
		{"> before the last segment", "/events/>/b", nil},
		{"%3E before the last segment", "/events/%3E/b", nil},
		{"* inside a token", "/events/a*", nil},
		{"escaped * inside a token", "/events/a%2A", nil},
		{"> inside a token", "/events/>b", nil},
		{"escaped > inside a token", "/events/a%3E", nil},
		{"space", "/events/a%20b", nil},
		{"space only", "/events/%20", nil},
		{"tab", "/events/a%09b", nil},
		{"control character", "/events/a%01b", nil},
		{"NUL", "/events/a%00b", nil},
		{"DEL", "/events/a%7Fb", nil},
		{"invalid UTF-8", "/events/%C3%28", nil},
		{"sse without subject", "/sse", nil},
		{"sse with other parameters only", "/sse?lastEventId=1", nil},
		{"empty subject parameter", "/sse?subject=", nil},
		{"subject with empty token", "/sse?subject=events..a", nil},
		{"subject with > inside", "/sse?subject=events.>.a", nil},
		{"subject with space", "/sse?subject=events.a%20b", nil},
		{"subject with * in a token", "/events/demo?subject=events.a*", nil},
		{"too many subjects", "/sse?subject=events.a&subject=events.b&subject=events.c&subject=events.d", nil},
		{"URL too long", long, nil},
		{"URL too long by its query", "/events/demo?x=" + strings.Repeat("b", 300), nil},
		{"Last-Event-ID abc", "/events/demo", header("Last-Event-ID", "abc")},
		{"Last-Event-ID -1", "/events/demo", header("Last-Event-ID", "-1")},
		{"Last-Event-ID 1.5", "/events/demo", header("Last-Event-ID", "1.5")},
		{"Last-Event-ID +1", "/events/demo", header("Last-Event-ID", "+1")},
		{"Last-Event-ID hex", "/events/demo", header("Last-Event-ID", "0x10")},
		{"Last-Event-ID beyond uint64", "/events/demo", header("Last-Event-ID", "18446744073709551616")},
		{"lastEventId abc", "/events/demo?lastEventId=abc", nil},
		{"lastEventId -1", "/events/demo?lastEventId=-1", nil},
		{"invalid header, valid query", "/events/demo?lastEventId=1", header("Last-Event-ID", "x")},
		{"since banana", "/events/demo?since=banana", nil},
		{"since date without time", "/events/demo?since=2026-01-02", nil},
		{"envelope xml", "/events/demo?envelope=xml", nil},
		{"malformed and not served: 400 first", "/foo/a%2Eb", nil},
		{"bad position and not served: 400 first", "/foo/bar?lastEventId=x", nil},
	}
	for _, tt := range tests {
		a := e.send(http.MethodGet, tt.target, tt.header)
		if a.status >= 300 && a.status < 400 {
			t.Errorf("%s: GET %s: got a redirect %d to %q, want 400", tt.name, tt.target, a.status, a.header.Get("Location"))
			continue
		}
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: GET %s: got status %d, want 400", tt.name, tt.target, a.status)
			continue
		}
		if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: GET %s: got Content-Type %q, want application/problem+json", tt.name, tt.target, ct)
			continue
		}
		var p problemDetail
		if err := json.Unmarshal(a.body, &p); err != nil {
			t.Errorf("%s: GET %s: body %q: %v", tt.name, tt.target, a.body, err)
			continue
		}
		if p.Status != 400 || p.Title == "" || p.Detail == "" {
			t.Errorf("%s: GET %s: got problem %+v, want status 400 with a title and a detail", tt.name, tt.target, p)
		}
	}
}

// TestRequestUnparsableTarget: Go's HTTP server refuses a request target
// that is not a URL ("%zz", a cut escape) before natsse sees it; its plain 400 is what
// docs/protocol.md, "Errors" accepts there. It must still be a 400, never a redirect.
func TestRequestUnparsableTarget(t *testing.T) {
	e := start(t, service.Config{})
	for _, target := range []string{"/events/%zz", "/events/a%zz/b", "/events/a%2", "/events/%"} {
		if a := e.send(http.MethodGet, target, nil); a.status != http.StatusBadRequest {
			t.Errorf("GET %s: got status %d, want 400", target, a.status)
		}
	}
}

func TestRequestAccepted(t *testing.T) {
	e := start(t, service.Config{})
	tests := []struct {
		target string
		header http.Header
	}{
		{"/events/demo", nil},
		{"/events/orders/*/created", nil},
		{"/events/orders/%2A/created", nil},
		{"/events/orders/>", nil},
		{"/events/orders/%3E", nil},
		{"/events/%3e", nil},
		{"/events/%2A/x", nil},
		{"/events/caf%C3%A9", nil},
		{"/events/caf%C3%A9/%E2%9C%93/%F0%9F%98%80", nil},
		{"/events/a%25b", nil}, // a literal "%"
		{"/events/a-b_c~d:e@f$g&h=i+j,k;l!m'n(o)p", nil},
		{"/sse?subject=events.a&subject=events.b.>", nil},
		{"/sse?subject=events.a&subject=events.a", nil}, // a repeated subject counts once
		{"/events/demo?subject=events.other", nil},
		{"/events/demo?lastEventId=0", nil},
		{"/events/demo?lastEventId=1", header("Last-Event-ID", "")},
		{"/events/demo", header("Last-Event-ID", "18446744073709551615")},
		{"/events/demo?since=5m", nil},
		{"/events/demo?since=2026-01-02T15:04:05Z", nil},
		{"/events/demo?since=2026-01-02T15:04:05.123456789%2B02:00", nil},
		{"/events/demo?envelope=json", nil},
		{"/events/demo?envelope=", nil},
		{"/events/demo?unknown=1", nil},
	}
	for _, tt := range tests {
		a := e.send(http.MethodGet, tt.target, tt.header)
		if a.status != http.StatusOK || a.err != nil || a.first.Retry < 0 {
			t.Errorf("GET %s: got status %d, first block %+v (%v), body %q; want 200 and a retry: line", tt.target, a.status, a.first, a.err, a.body)
		}
	}
}

func TestRequestEmptyHeaderUsesQuery(t *testing.T) {
	e := start(t, service.Config{})
	for i := 1; i <= 3; i++ {
		e.publish("events.q", seqPayload(i))
	}
	c := e.open("/events/q?lastEventId=1", header("Last-Event-ID", ""))
	c.expectSeqs(2, 3)
}

func TestRequestNotServed(t *testing.T) {
	e := start(t, service.Config{Subjects: []string{"events.public.>"}})
	for _, target := range []string{
		"/foo/bar", "/metrics/x", "/healthz/x", "/readyz/x", "/sse/x", "/events", "/EVENTS/public/x",
		"/events/private/x", "/events/>", "/events/*/x", "/sse?subject=events.public.a&subject=events.private",
	} {
		a := e.send(http.MethodGet, target, nil)
		var p problemDetail
		err := json.Unmarshal(a.body, &p)
		if a.status != http.StatusNotFound || a.header.Get("Content-Type") != "application/problem+json" || err != nil || p.Status != 404 || p.Detail == "" {
			t.Errorf("GET %s: got %d %q %q, want 404 problem+json with a detail", target, a.status, a.header.Get("Content-Type"), a.body)
		}
	}
	if a := e.send(http.MethodGet, "/events/public/x", nil); a.status != http.StatusOK {
		t.Errorf("GET /events/public/x: got %d, want 200", a.status)
	}
}

func TestRequestMethodNotAllowed(t *testing.T) {
	e := start(t, service.Config{})
	for _, method := range []string{http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete} {
		for _, target := range []string{"/events/demo", "/sse?subject=events.a"} {
			a := e.send(method, target, nil)
			if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
				t.Errorf("%s %s: got %d with Allow %q, want 405 with Allow: GET", method, target, a.status, a.header.Get("Allow"))
			}
			if method != http.MethodHead && a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s: got Content-Type %q, want application/problem+json", method, target, a.header.Get("Content-Type"))
			}
		}
	}
	if a := e.send(http.MethodPost, "/healthz", nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
		t.Errorf("POST /healthz: got %d with Allow %q, want 405 with Allow: GET", a.status, a.header.Get("Allow"))
	}
}

func TestRequestReservedPaths(t *testing.T) {
	e := start(t, service.Config{})
	for _, target := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		a := e.send(http.MethodGet, target, nil)
		if a.status != http.StatusOK || len(a.body) == 0 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: got %d %q %q, want 200 text", target, a.status, a.header.Get("Content-Type"), a.body)
		}
	}
	if a := e.send(http.MethodGet, "/metrics", nil); !strings.Contains(string(a.body), "\nnatsse_streams_open ") {
		t.Errorf("GET /metrics: got %q, want a natsse_streams_open series", a.body)
	}
	if a := e.send(http.MethodHead, "/healthz", nil); a.status != http.StatusOK {
		t.Errorf("HEAD /healthz: got %d, want 200", a.status)
	}
}

func TestRequestBasePath(t *testing.T) {
	e := start(t, service.Config{BasePath: "/gw"})
	c := e.open("/gw/events/demo", nil)
	seq := e.publish("events.demo", "hi")
	if ev := c.next(); ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "hi" {
		t.Fatalf("got %+v, want id %d data hi", ev, seq)
	}
	tests := []struct {
		target string
		want   int
	}{
		{"/gw/healthz", 200},
		{"/gw/readyz", 200},
		{"/gw/metrics", 200},
		{"/gw/", 200},
		{"/gw", 200},
		{"/gw/sse?subject=events.demo", 200},
		{"/events/demo", 404},
		{"/healthz", 404},
		{"/gwx/events/demo", 404},
		{"/gw/events/a%2Eb", 400},
	}
	for _, tt := range tests {
		if a := e.send(http.MethodGet, tt.target, nil); a.status != tt.want {
			t.Errorf("GET %s: got %d, want %d", tt.target, a.status, tt.want)
		}
	}
}

func TestRequestStreamHeaders(t *testing.T) {
	e := start(t, service.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, r, err := ssetest.Dial(ctx, e.url+"/events/h", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Fatalf("got %d %s, want 200 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Connection":        "keep-alive",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	// Nothing is published: the retry block arrives on its own.
	ev, err := r.Next()
	if err != nil || ev.Retry != 2000 || ev.HasData || ev.HasID || ev.Event != "" {
		t.Fatalf("first block: got %+v (%v), want only retry: 2000", ev, err)
	}
	seq := e.publish("events.h", "x")
	if ev, err := r.Next(); err != nil || ev.ID != strconv.FormatUint(seq, 10) || ev.Data != "x" {
		t.Fatalf("got %+v (%v), want id %d data x", ev, err, seq)
	}
}

func TestRequestRetryConfigured(t *testing.T) {
	e := start(t, service.Config{Retry: 3500 * time.Millisecond})
	a := e.send(http.MethodGet, "/events/r", nil)
	if a.status != 200 || a.err != nil || a.first.Retry != 3500 {
		t.Fatalf("got %d, first block %+v (%v), want retry: 3500", a.status, a.first, a.err)
	}
}

// TestRequestOptionsAndMetricsMethods: an OPTIONS that is not a CORS
// preflight is 405 with Allow on every path, CORS on or off, and /metrics
// answers GET and HEAD only.
func TestRequestOptionsAndMetricsMethods(t *testing.T) {
	off := start(t, service.Config{})
	on := start(t, service.Config{CORSOrigins: []string{"https://app.example"}})
	for _, e := range []*env{off, on} {
		for _, target := range []string{"/events/demo", "/healthz", "/metrics", "/nowhere"} {
			if a := e.send(http.MethodOptions, target, nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
				t.Errorf("OPTIONS %s: got %d with Allow %q, want 405 with Allow: GET", target, a.status, a.header.Get("Allow"))
			}
		}
	}
	preflight := header("Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	if a := on.send(http.MethodOptions, "/events/demo", preflight); a.status != http.StatusNoContent {
		t.Errorf("a CORS preflight: got %d, want 204", a.status)
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, "PATCH"} {
		if a := off.send(method, "/metrics", nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
			t.Errorf("%s /metrics: got %d with Allow %q, want 405 with Allow: GET", method, a.status, a.header.Get("Allow"))
		}
	}
	if a := off.send(http.MethodHead, "/metrics", nil); a.status != http.StatusOK {
		t.Errorf("HEAD /metrics: got %d, want 200", a.status)
	}
}
