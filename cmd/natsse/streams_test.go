package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestBinarySeveralStreams: natsse with NATSSE_STREAM=ORDERS,CHAT,AUDIT, as
// a new user runs it: the streams created after natsse started (what nats
// stream add does), then read with one SSE client each, published to, and
// each client gets its own stream's events; a request across two streams
// is 400 naming them. With the default NATSSE_UPSTREAM_IDLE a stream holds
// a consumer of natsse's only while it is read.
func TestBinarySeveralStreams(t *testing.T) {
	p := startNatsse(t, "NATSSE_STREAM=ORDERS,CHAT,AUDIT")
	base := "http://" + p.httpAddr
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "ORDERS") {
		t.Errorf("/readyz before the streams exist: %d %q, want 503 naming them", code, body)
	}
	js := jetStream(t, p.natsURL)
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	prefixes := map[string]string{"ORDERS": "orders", "CHAT": "chat", "AUDIT": "audit"}
	for name, prefix := range prefixes {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(patience())
	for {
		code, body := get(t, base+"/readyz")
		if code == http.StatusOK && body == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q, want 200 ok once the streams exist", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name := range prefixes {
		if n := consumers(t, js, name); n != 0 {
			t.Errorf("stream %s has %d consumers before anyone reads it, want 0", name, n)
		}
	}

	clients := map[string]*stream{}
	for name, prefix := range prefixes {
		clients[name] = openStream(t, base+"/"+prefix+"/1", nil)
		clients[name].expectRetry(t, 200)
	}
	for i := 1; i <= 2; i++ {
		for _, prefix := range []string{"orders", "chat", "audit"} {
			ack, err := js.Publish(ctx, prefix+".1", []byte(payload(i)))
			if err != nil {
				t.Fatal(err)
			}
			if ack.Sequence != uint64(i) {
				t.Fatalf("%s.1: sequence %d, want %d", prefix, ack.Sequence, i)
			}
		}
	}
	for name, c := range clients {
		c.expectMessage(t, 1)
		c.expectMessage(t, 2)
		if n := consumers(t, js, name); n != 1 {
			t.Errorf("stream %s has %d consumers while read, want 1", name, n)
		}
	}

	code, body := get(t, base+"/orders/1?subject=chat.1")
	var problem struct{ Detail string }
	_ = json.Unmarshal([]byte(body), &problem)
	if code != http.StatusBadRequest || !strings.Contains(problem.Detail, "ORDERS") || !strings.Contains(problem.Detail, "CHAT") {
		t.Errorf("a request across ORDERS and CHAT: %d %q, want 400 naming both", code, body)
	}
}

// get fetches a URL that answers at once (not a stream).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// consumers counts a stream's consumers.
func consumers(t *testing.T, js jetstream.JetStream, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Consumers
}
