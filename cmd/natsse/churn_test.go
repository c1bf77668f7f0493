package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natsse/natsse/service/ssetest"
)

// churnCycles is how many connect/disconnect cycles each kind runs; five
// kinds make 10,000 in all.
const churnCycles = 2000

// TestChurnLeavesNothingBehind: 10,000 connect/disconnect cycles — clean
// closes, resets in the middle of the request headers, resets in the middle
// of a stream that is being written, and TLS HTTP/1.1 and HTTP/2 streams
// cancelled — leave natsse's goroutines, open files and open streams where
// they were before, and its memory close to it.
func TestChurnLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: not in -short")
	}
	plain := startNatsse(t, "NATSSE_HEARTBEAT=50ms")
	cert := selfSigned(t)
	secure := startNatsse(t, append(cert.env(), "NATSSE_HEARTBEAT=50ms")...)
	plainBase, secureBase := "http://"+plain.httpAddr, "https://"+secure.httpAddr
	h1, h2 := cert.client(t, false, nil), cert.client(t, true, nil)

	kinds := []struct {
		name  string
		p     *natsse
		cycle func(t *testing.T, i int)
	}{
		{"clean close", plain, func(t *testing.T, i int) { streamThenClose(t, plain.httpAddr, i, false) }},
		{"reset in the request headers", plain, func(t *testing.T, i int) { resetInHeaders(t, plain.httpAddr, i) }},
		{"reset mid-stream", plain, func(t *testing.T, i int) { streamThenClose(t, plain.httpAddr, i, true) }},
		{"TLS HTTP/1.1 cancelled", secure, func(t *testing.T, i int) { streamThenCancel(t, h1, secureBase, i) }},
		{"HTTP/2 stream cancelled", secure, func(t *testing.T, i int) { streamThenCancel(t, h2, secureBase, i) }},
	}
	// Warm up first, so that the baseline holds what a process keeps
	// anyway (pools, the HTTP/2 connection of h2, buffers).
	for _, k := range kinds {
		churn(t, 100, k.cycle)
	}
	settle(t, plain, plainBase, nil)
	settle(t, secure, secureBase, h1)
	before := map[*natsse]usage{plain: usageOf(t, plain, plainBase, nil), secure: usageOf(t, secure, secureBase, h1)}

	for _, k := range kinds {
		churn(t, churnCycles, k.cycle)
		t.Logf("%s: %d cycles", k.name, churnCycles)
	}
	settle(t, plain, plainBase, nil)
	settle(t, secure, secureBase, h1)
	for p, b := range before {
		base, client := plainBase, (*http.Client)(nil)
		if p == secure {
			base, client = secureBase, h1
		}
		a := usageOf(t, p, base, client)
		t.Logf("%s: goroutines %d -> %d, open files %d -> %d, RSS %d -> %d KiB", base, b.goroutines, a.goroutines, b.files, a.files, b.rss>>10, a.rss>>10)
		// A few goroutines and files come and go with the metrics request
		// and NATS itself; a leak of one per cycle would be thousands.
		if a.goroutines > b.goroutines+20 {
			t.Errorf("%s: %d goroutines after the churn, %d before", base, a.goroutines, b.goroutines)
		}
		if a.files > b.files+20 {
			t.Errorf("%s: %d open files after the churn, %d before", base, a.files, b.files)
		}
		if a.rss > b.rss+64<<20 {
			t.Errorf("%s: RSS %d MiB after the churn, %d MiB before", base, a.rss>>20, b.rss>>20)
		}
	}
}

// churn runs cycle n times on 8 workers.
func churn(t *testing.T, n int, cycle func(t *testing.T, i int)) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				cycle(t, i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// streamThenClose opens a stream over plain HTTP/1.1, reads its first
// block, and closes the connection: cleanly, or with a reset while natsse
// writes heartbeats to it.
func streamThenClose(t *testing.T, addr string, i int, reset bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Errorf("dial: %v", err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(patience()))
	fmt.Fprintf(c, "GET /events/churn/%d HTTP/1.1\r\nHost: natsse\r\n\r\n", i%50)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("stream %d: %v %v", i, resp, err)
		return
	}
	if _, err := ssetest.NewReader(resp.Body).Next(); err != nil {
		t.Errorf("stream %d: first block: %v", i, err)
		return
	}
	if reset {
		if _, err := br.ReadString('\n'); err != nil { // a heartbeat: natsse is writing
			t.Errorf("stream %d: heartbeat: %v", i, err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
	}
}

// resetInHeaders sends half a request and resets the connection.
func resetInHeaders(t *testing.T, addr string, i int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Errorf("dial: %v", err)
		return
	}
	fmt.Fprintf(c, "GET /events/churn/%d HTTP/1.1\r\nHo", i%50)
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

// streamThenCancel opens a stream through client (TLS HTTP/1.1 or HTTP/2),
// reads its first block and cancels the request.
func streamThenCancel(t *testing.T, client *http.Client, base string, i int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, r, err := ssetest.DialWith(ctx, client, fmt.Sprintf("%s/events/churn/%d", base, i%50), nil)
	if err != nil {
		t.Errorf("stream %d: %v", i, err)
		return
	}
	defer resp.Body.Close()
	if _, err := r.Next(); err != nil {
		t.Errorf("stream %d: first block: %v", i, err)
	}
	cancel()
}

type usage struct {
	goroutines, files int
	rss               int64
}

// usageOf reads natsse's goroutines (its /metrics), open files and RSS
// (/proc).
func usageOf(t *testing.T, p *natsse, base string, client *http.Client) usage {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	u := usage{goroutines: int(metricOver(t, client, base, "go_goroutines"))}
	pid := p.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	u.files = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			u.rss = kb << 10
		}
	}
	return u
}

// settle waits until natsse has no stream open and holds no connection
// but the one asking (streams end when natsse notices the hang-up).
func settle(t *testing.T, p *natsse, base string, client *http.Client) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	deadline := time.Now().Add(patience())
	for {
		open := metricOver(t, client, base, "natsse_streams_open")
		conns := metricOver(t, client, base, "natsse_connections_open")
		if open == 0 && conns <= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v streams and %v connections still open after the churn", base, open, conns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
