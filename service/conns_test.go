package service_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
)

// TestSoftRefusalClosesConnection: a soft refusal over HTTP/1.1 says
// Connection: close and closes its connection, so that a refused client
// holds no idle connection (and no open file) afterwards.
func TestSoftRefusalClosesConnection(t *testing.T) {
	e := start(t, service.Config{MaxStreams: 1, Retry: 500 * time.Millisecond})
	e.open("/events/one", nil)
	conn, err := net.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(patience()))
	if _, err := io.WriteString(conn, "GET /events/one HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasPrefix(string(body), "retry: ") {
		t.Fatalf("soft refusal body %q (%v), want a retry: line", body, err)
	}
	if !resp.Close { // net/http reads "Connection: close" into Close
		t.Errorf("headers %v: want Connection: close", resp.Header)
	}
	// The server closes its end: the next read ends, before the deadline.
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("after the soft refusal: read %d bytes (%v), want the connection closed", n, err)
	}
}

// TestReadyzAsksStoreHealth: /readyz is 503 with the store's reason while
// StoreHealth says JetStream cannot store, and 200 again when it can.
func TestReadyzAsksStoreHealth(t *testing.T) {
	var broken atomic.Pointer[error]
	e := start(t, service.Config{StoreHealth: func() error {
		if err := broken.Load(); err != nil {
			return *err
		}
		return nil
	}})
	waitFor(t, "ready", func() bool { return e.send(http.MethodGet, "/readyz", nil).status == http.StatusOK })
	err := errors.New("JetStream cannot store: too many open files")
	broken.Store(&err)
	if a := e.send(http.MethodGet, "/readyz", nil); a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "too many open files") {
		t.Errorf("GET /readyz with the store broken: %d %q, want 503 with the reason", a.status, a.body)
	}
	broken.Store(nil)
	if a := e.send(http.MethodGet, "/readyz", nil); a.status != http.StatusOK {
		t.Errorf("GET /readyz with the store healthy again: %d %q, want 200", a.status, a.body)
	}
}
