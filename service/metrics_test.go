package service_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestMetricsForOperators: label values are codes, known ones start at 0,
// and the series operators watch are there: delivery latency (one
// observation per live batch), the NATS connection, the upstream's lag and
// the build.
func TestMetricsForOperators(t *testing.T) {
	e := start(t, service.Config{Version: "v1.2.3", Revision: "abc123"})
	e.expectStatus("/events/a%2Eb", nil, http.StatusBadRequest)
	c := e.open("/events/m", nil)
	seq := e.publish("events.m", "x")
	c.expectSeqs(seq, seq)
	waitFor(t, "the upstream lag to be 0", func() bool { return e.metric("natsse_upstream_lag_events") == 0 })

	text := e.scrape()
	for _, want := range []string{
		`natsse_stream_requests_total{outcome="bad_request"} 1`,
		`natsse_stream_requests_total{outcome="forbidden"} 0`,
		`natsse_streams_ended_total{reason="write_timeout"} 0`,
		`natsse_connections_refused_total{reason="total"} 0`,
		`natsse_delivery_latency_seconds_count 1`,
		`natsse_nats_connected 1`,
		`natsse_nats_reconnects_total 0`,
		`natsse_build_info{go="go`,
		`revision="abc123",version="v1.2.3"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	label := regexp.MustCompile(`^natsse_[a-z_]+\{(.*)\} `)
	value := regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
	for _, line := range strings.Split(text, "\n") {
		m := label.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "natsse_build_info") || strings.Contains(line, "_bucket{") {
			continue
		}
		for _, v := range value.FindAllStringSubmatch(m[1], -1) {
			if v[1] == "stream" {
				// A JetStream stream's name, as JetStream spells it.
				if v[2] != "EVENTS" {
					t.Errorf("stream label %q, want the stream's name EVENTS: %s", v[2], line)
				}
				continue
			}
			if !regexp.MustCompile(`^[a-z_]+$`).MatchString(v[2]) {
				t.Errorf("label value %q is not a code: %s", v[2], line)
			}
		}
	}
}

// scrape returns /metrics as text.
func (e *env) scrape() string {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}
