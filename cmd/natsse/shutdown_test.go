package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinaryShutdownWithStalledReader: SIGTERM while a client has stopped
// reading in the middle of large events (its receive window is tiny and it
// never reads) still ends the process, and natsse's own count says every
// stream was closed. How long it takes is bounded by
// NATSSE_SHUTDOWN_TIMEOUT by construction (a watchdog), not asserted here.
func TestBinaryShutdownWithStalledReader(t *testing.T) {
	p := startNatsse(t, "NATSSE_SHUTDOWN_TIMEOUT=2s", "NATSSE_WRITE_TIMEOUT=1h")
	js := jetStream(t, p.natsURL)

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(t.Context(), "tcp", p.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /events/stalled HTTP/1.1\r\nHost: natsse\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{}
	base := "http://" + p.httpAddr
	deadline := time.Now().Add(patience())
	for metricOver(t, client, base, "natsse_streams_open") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled reader's stream never opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	big := bytes.Repeat([]byte("x"), 512<<10)
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	const n = 40 // 20 MB: far more than the socket buffers hold
	for range n {
		if _, err := js.Publish(ctx, "events.stalled", big); err != nil {
			t.Fatal(err)
		}
	}
	for metricOver(t, client, base, "natsse_upstream_events_total") < n {
		if time.Now().After(deadline) {
			t.Fatal("natsse never read what was published")
		}
		time.Sleep(10 * time.Millisecond)
	}
	client.CloseIdleConnections()

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(patience()):
		t.Fatal("natsse did not exit after SIGTERM")
	}
	var stopped struct {
		Msg         string `json:"msg"`
		StreamsOpen *int   `json:"streams_open"`
	}
	for line := range strings.Lines(p.stderr.String()) {
		var l struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "stopped" {
			_ = json.Unmarshal([]byte(line), &stopped)
		}
	}
	if stopped.Msg != "stopped" || stopped.StreamsOpen == nil || *stopped.StreamsOpen != 0 {
		t.Errorf(`want a "stopped" line with streams_open 0, got %+v:%s`, stopped, p.stderr.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0 (the shutdown finished before the watchdog)", code)
	}
}
