package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

// TestRequestLimits: at the per-request limits a stream opens; one past
// them is a 400 whose detail names the setting to change.
func TestRequestLimits(t *testing.T) {
	e := start(t, service.Config{MaxSubjects: 2, MaxURLBytes: 100})
	atURLLimit := "/events/demo?pad=" + strings.Repeat("x", 100-len("/events/demo?pad="))
	for _, target := range []string{
		"/sse?subject=events.a&subject=events.b",
		"/events/a?subject=events.b",
		"/sse?subject=events.a&subject=events.b&subject=events.a", // a repeated subject counts once
		atURLLimit,
	} {
		if a := e.send(http.MethodGet, target, nil); a.status != http.StatusOK || a.err != nil || a.first.Retry < 0 {
			t.Errorf("GET %s: got %d %+v (%v), want a stream", target, a.status, a.first, a.err)
		}
	}
	for target, setting := range map[string]string{
		"/sse?subject=events.a&subject=events.b&subject=events.c": "NATSSE_MAX_SUBJECTS",
		"/events/a?subject=events.b&subject=events.c":             "NATSSE_MAX_SUBJECTS",
		atURLLimit + "x": "NATSSE_MAX_URL_BYTES",
	} {
		a := e.send(http.MethodGet, target, nil)
		var p problemDetail
		_ = json.Unmarshal(a.body, &p)
		if a.status != http.StatusBadRequest || a.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, setting) {
			t.Errorf("GET %s: got %d %q %s, want a 400 problem naming %s", target, a.status, a.header.Get("Content-Type"), a.body, setting)
		}
	}
}

// TestMaxStreamsPerClient: a client at its limit gets the soft refusal,
// other clients do not, and a stream that ends frees its slot.
func TestMaxStreamsPerClient(t *testing.T) {
	e := start(t, service.Config{MaxStreamsPerClient: 2, Retry: 500 * time.Millisecond})
	local := http.DefaultClient // from 127.0.0.1
	first := e.openWith(local, "/events/pc", nil)
	second := e.openWith(local, "/events/pc", nil)
	softRefusedWith(t, e, local, "/events/pc", nil, 500*time.Millisecond)
	softRefusedWith(t, e, local, "/sse?subject=events.other", nil, 500*time.Millisecond)
	if got := e.metric("natsse_client_limit_refusals_total"); got != 2 {
		t.Errorf("natsse_client_limit_refusals_total: got %v, want 2", got)
	}
	other := e.openWith(e.clientFrom("127.0.0.2"), "/events/pc", nil)

	seq := e.publish("events.pc", "x")
	for _, c := range []*client{first, second, other} {
		c.expectSeqs(seq, seq)
	}
	first.close()
	waitFor(t, "the closed stream to be counted out", func() bool { return e.metric("natsse_streams_open") == 2 })
	again := e.openWith(local, "/events/pc", header("Last-Event-ID", strconv.FormatUint(seq-1, 10)))
	again.expectSeqs(seq, seq)
	softRefusedWith(t, e, local, "/events/pc", nil, 500*time.Millisecond)
}

// TestTrustedProxies: X-Forwarded-For tells clients apart only when the
// peer is a trusted proxy, and then only up to the first address that is
// not one: what the client wrote itself is never believed.
func TestTrustedProxies(t *testing.T) {
	e := start(t, service.Config{
		MaxStreamsPerClient: 1,
		Retry:               500 * time.Millisecond,
		TrustedProxies:      []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")},
	})
	proxy, direct := e.clientFrom("127.0.0.2"), e.clientFrom("127.0.0.3")
	xff := func(v string) http.Header { return header("X-Forwarded-For", v) }
	const path = "/events/proxied"

	// Through the trusted proxy: one stream for each forwarded client.
	opened := []*client{e.openWith(proxy, path, xff("198.51.100.1")), e.openWith(proxy, path, xff("198.51.100.2"))}
	softRefusedWith(t, e, proxy, path, xff("198.51.100.1"), 500*time.Millisecond)
	// A client that puts another address in front is still itself.
	softRefusedWith(t, e, proxy, path, xff("192.0.2.99, 198.51.100.1"), 500*time.Millisecond)
	// Proxies in a row: 10.1.2.3 is trusted, so the client is left of it.
	opened = append(opened, e.openWith(proxy, path, xff("198.51.100.3, 10.1.2.3")))
	softRefusedWith(t, e, proxy, path, xff("198.51.100.3"), 500*time.Millisecond)

	// An untrusted peer's X-Forwarded-For is ignored: the peer counts.
	opened = append(opened, e.openWith(direct, path, xff("198.51.100.4")))
	softRefusedWith(t, e, direct, path, xff("198.51.100.5"), 500*time.Millisecond)
	if got := e.metric("natsse_client_limit_refusals_total"); got != 4 {
		t.Errorf("natsse_client_limit_refusals_total: got %v, want 4", got)
	}
	// The four that opened are streams, not refusals that look alike.
	seq := e.publish("events.proxied", "x")
	for _, c := range opened {
		c.expectSeqs(seq, seq)
	}
}

// clientFrom returns an HTTP client whose connections come from the local
// address ip (any of 127.0.0.0/8 on Linux loopback): another peer.
func (e *env) clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// openWith is open through hc.
func (e *env) openWith(hc *http.Client, path string, h http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	resp, r, err := ssetest.DialWith(ctx, hc, e.url+path, h)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	c := &client{t: e.t, e: e, resp: resp, r: r, cancel: cancel}
	e.t.Cleanup(c.close)
	first, err := r.Next()
	if resp.StatusCode != http.StatusOK || err != nil || first.Retry < 0 {
		e.t.Fatalf("GET %s %v: got %d %+v (%v), want a stream", path, h, resp.StatusCode, first, err)
	}
	return c // or a soft refusal, which looks the same so far
}

// softRefusedWith is softRefused through hc, with header h.
func softRefusedWith(t *testing.T, e *env, hc *http.Client, path string, h http.Header, retry time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	resp, r, err := ssetest.DialWith(ctx, hc, e.url+path, h)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev, err := r.Next()
	if ms := int(retry.Milliseconds()); resp.StatusCode != http.StatusOK || err != nil || ev.Retry < ms || ev.Retry > 2*ms || ev.HasData {
		t.Fatalf("GET %s %v: got %d %+v (%v), want 200 and one retry block between %d and %d", path, h, resp.StatusCode, ev, err, ms, 2*ms)
	}
	if ev, err := r.Next(); err != io.EOF {
		t.Fatalf("GET %s %v: after the retry block got %+v (%v), want the end of the stream (a soft refusal)", path, h, ev, err)
	}
}
