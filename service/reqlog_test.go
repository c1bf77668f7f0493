package service_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
)

// logLine is a JSON log line with the attributes these tests read.
type logLine struct {
	Level    string   `json:"level"`
	Msg      string   `json:"msg"`
	Path     string   `json:"path"`
	Subjects []string `json:"subjects"`
	Outcome  string   `json:"outcome"`
	Position *uint64  `json:"position"`
	Duration *int64   `json:"duration"`
	Origin   string   `json:"origin"`
	Client   string   `json:"client"`
}

func logLines(t *testing.T, logs *lockedBuffer, msg string) []logLine {
	t.Helper()
	var out []logLine
	for line := range strings.Lines(logs.String()) {
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(l.Msg, msg) {
			out = append(out, l)
		}
	}
	return out
}

func jsonLogger(logs *lockedBuffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
}

// TestDebugRequestLines: at debug, each request gets one line with its
// path, subjects, outcome, position and duration (a stream's when it ends,
// with why and the position it reached); at info, none.
func TestDebugRequestLines(t *testing.T) {
	var logs lockedBuffer
	e := start(t, service.Config{Logger: jsonLogger(&logs, slog.LevelDebug)})
	e.publish("events.a", "m1")
	c := e.open("/events/a", header("Last-Event-ID", "0"))
	c.expectSeqs(1, 1)
	c.close()
	e.expectStatus("/events/a?lastEventId=x", nil, http.StatusBadRequest)
	e.expectStatus("/orders/a", nil, http.StatusNotFound)
	e.expectStatus("/readyz", nil, http.StatusOK)

	waitFor(t, "the stream's line", func() bool { return len(logLines(t, &logs, "request")) == 4 })
	time.Sleep(200 * time.Millisecond) // no line comes twice
	lines := logLines(t, &logs, "request")
	if len(lines) != 4 {
		t.Fatalf("%d request lines, want 4:\n%s", len(lines), logs.String())
	}
	byPath := map[string]logLine{}
	for _, l := range lines {
		if l.Level != "DEBUG" || l.Duration == nil {
			t.Errorf("request line %+v: want DEBUG with a duration", l)
		}
		byPath[l.Path+" "+l.Outcome] = l
	}
	stream, ok := byPath["/events/a stream client_closed"]
	if !ok || fmt.Sprint(stream.Subjects) != "[events.a]" || stream.Position == nil || *stream.Position != 1 {
		t.Errorf("the stream's line: %+v, want subjects [events.a], outcome stream client_closed, position 1", stream)
	}
	for _, want := range []string{"/events/a 400", "/orders/a 404", "/readyz 200"} {
		if _, ok := byPath[want]; !ok {
			t.Errorf("no request line %q: %v", want, byPath)
		}
	}
	if strings.Contains(logs.String(), "lastEventId") {
		t.Error("a request line holds the query, which may carry a token")
	}

	var quiet lockedBuffer
	info := start(t, service.Config{Logger: jsonLogger(&quiet, slog.LevelInfo)})
	info.expectStatus("/readyz", nil, http.StatusOK)
	info.expectStatus("/orders/a", nil, http.StatusNotFound)
	if n := len(logLines(t, &quiet, "request")); n != 0 {
		t.Errorf("at info: %d request lines, want none", n)
	}
}

// TestStreamLimitLoggedOnce: the first soft refusal for the per-address
// stream limit is logged at info, once, saying to set
// NATSSE_TRUSTED_PROXIES behind a load balancer.
func TestStreamLimitLoggedOnce(t *testing.T) {
	var logs lockedBuffer
	e := start(t, service.Config{Logger: jsonLogger(&logs, slog.LevelInfo), MaxStreamsPerClient: 1})
	e.open("/events/a", nil)
	for range 3 {
		e.expectStatus("/events/a", nil, http.StatusOK) // the soft refusal
	}
	if got := e.metric("natsse_client_limit_refusals_total"); got != 3 {
		t.Fatalf("natsse_client_limit_refusals_total = %v, want 3", got)
	}
	lines := logLines(t, &logs, "a client address has NATSSE_MAX_STREAMS_PER_CLIENT streams open")
	if len(lines) != 1 || lines[0].Level != "INFO" || lines[0].Client != "127.0.0.1" {
		t.Fatalf("%d lines %+v, want one at INFO naming the client 127.0.0.1\n%s", len(lines), lines, logs.String())
	}
	if !strings.Contains(logs.String(), "set NATSSE_TRUSTED_PROXIES") {
		t.Error("the line does not say to set NATSSE_TRUSTED_PROXIES")
	}
}

// TestRefusedOriginLoggedOnce: a cross-origin request from an origin not in
// NATSSE_CORS_ORIGINS is logged once per origin, for at most 100 origins;
// allowed and same-origin requests are not logged.
func TestRefusedOriginLoggedOnce(t *testing.T) {
	var logs lockedBuffer
	e := start(t, service.Config{Logger: jsonLogger(&logs, slog.LevelInfo), CORSOrigins: []string{"https://app.example"}})
	own := "http://" + e.http.Listener.Addr().String()
	for _, o := range []string{"https://evil.example", "https://evil.example", "https://app.example", own, "https://other.example"} {
		e.expectStatus("/readyz", header("Origin", o), http.StatusOK)
	}
	const msg = "cross-origin request from an origin not in NATSSE_CORS_ORIGINS"
	lines := logLines(t, &logs, msg)
	if len(lines) != 2 || lines[0].Origin != "https://evil.example" || lines[1].Origin != "https://other.example" || lines[0].Level != "INFO" {
		t.Fatalf("got %+v, want one INFO line for each of https://evil.example and https://other.example", lines)
	}
	for i := range 150 {
		e.expectStatus("/readyz", header("Origin", fmt.Sprintf("https://o%d.example", i)), http.StatusOK)
	}
	if n := len(logLines(t, &logs, msg)); n != 100 {
		t.Errorf("%d refused origins logged, want 100 (the bound)", n)
	}
}
