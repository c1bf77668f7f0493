package service

import (
	"net/http"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are natsse's Prometheus series, on a registry of their own.
type metrics struct {
	registry  *prometheus.Registry
	delivered prometheus.Counter
	upstream  *prometheus.CounterVec // by stream
	detached  prometheus.Counter
	replays   prometheus.Counter
	// replayShared counts replayed events served from the replay cache.
	replayShared prometheus.Counter
	resets       prometheus.Counter
	requests     *prometheus.CounterVec
	published    *prometheus.CounterVec
	ended        *prometheus.CounterVec
	// clientLimit counts the soft refusals that were due to the per-client
	// limit: many of them hint at clients behind a proxy not trusted.
	clientLimit prometheus.Counter
	// connsRefused counts connections closed at once because a connection
	// budget was full, by which: total or per_client.
	connsRefused *prometheus.CounterVec
	// latency is JetStream's store time to the write of a live batch,
	// observed once per batch (its oldest event), not per event: the hot
	// path stays one observation per wake-up of a connection.
	latency prometheus.Histogram
}

// Label values of natsse's series are codes, never text with spaces.
var (
	endReasons     = []string{"client_closed", "write_timeout", "write_error", "stopped", "token_expired", "replay_busy", "other"}
	refusedReasons = []string{"total", "per_client"}
	outcomes       = []string{"stream", "soft_refusal", "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict", "too_many_requests", "not_implemented"}
)

// outcome is the label of a refusal with status: "bad_request" for 400.
func outcome(status int) string {
	text := strings.ToLower(http.StatusText(status))
	if text == "" {
		return "unknown_status"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r
		case r == ' ' || r == '-':
			return '_'
		}
		return -1
	}, text)
}

func newMetrics() *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natsse", Name: name, Help: help})
	}
	m := &metrics{
		registry:  prometheus.NewRegistry(),
		delivered: counter("events_delivered_total", "Events written to clients."),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "upstream_events_total",
			Help: "Messages received from each stream's upstream consumer."}, []string{"stream"}),
		detached:     counter("slow_client_fallbacks_total", "Times a client fell too far behind to stay live and went back to catching up."),
		replays:      counter("replays_total", "Catch-ups that needed a JetStream consumer because the ring no longer held the position."),
		replayShared: counter("replay_shared_events_total", "Replayed events served from what another stream's replay read (the replay cache)."),
		resets:       counter("resets_total", "reset events sent because a requested position was gone."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "stream_requests_total",
			Help: "Stream requests by outcome: stream, soft_refusal, or the refusal's status as a code (bad_request, unauthorized, forbidden, not_found, method_not_allowed, conflict, too_many_requests, not_implemented)."}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "natsse", Name: "delivery_latency_seconds",
			Help:    "From JetStream storing an event to natsse writing it to a live client, per batch (its oldest event); clocks of NATS and natsse hosts must agree.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "publish_requests_total",
			Help: "HTTP publishes by outcome: stored, duplicate (Idempotency-Key seen before), or the refusal's status as a code (bad_request, unauthorized, forbidden, not_found, method_not_allowed, payload_too_large, service_unavailable)."}, []string{"outcome"}),
		clientLimit: counter("client_limit_refusals_total", "Soft refusals because the client had NATSSE_MAX_STREAMS_PER_CLIENT streams open."),
	}
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "streams_ended_total",
		Help: "Streams that ended, by why: client_closed, write_timeout (the client stopped reading), write_error, stopped (shutdown, stream age), token_expired, replay_busy (waited NATSSE_REPLAY_WAIT for a replay slot: soft refusal), other."}, []string{"reason"})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "connections_refused_total",
		Help: "Connections closed as soon as accepted because a budget was full: total (NATSSE_MAX_CONNECTIONS) or per_client (NATSSE_MAX_CONNECTIONS_PER_CLIENT)."}, []string{"reason"})
	// Known label values start at 0, so that rate() and alerts see them
	// before the first event.
	for _, r := range endReasons {
		m.ended.WithLabelValues(r)
	}
	for _, r := range refusedReasons {
		m.connsRefused.WithLabelValues(r)
	}
	for _, o := range outcomes {
		m.requests.WithLabelValues(o)
	}
	for _, o := range []string{"stored", "duplicate"} {
		m.published.WithLabelValues(o)
	}
	m.registry.MustRegister(m.ended, m.connsRefused, m.latency, m.delivered, m.upstream, m.detached, m.replays, m.replayShared, m.resets, m.requests, m.published, m.clientLimit,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observed is what the gauges read from the server's state when scraped.
type observed struct {
	connsOpen     func() int
	streamsOpen   func() int64
	ready         func() bool
	natsConnected func() bool
	reconnects    func() uint64
	streams       func() []*servedStream
}

// observe adds the gauges read from the server's state when scraped, and
// natsse_build_info.
func (m *metrics) observe(o observed, version, revision string) {
	connsOpen, streamsOpen, ready := o.connsOpen, o.streamsOpen, o.ready
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "natsse", Name: "build_info",
		Help: "Always 1; the labels say which natsse runs."}, []string{"version", "revision", "go"})
	build.WithLabelValues(orUnknown(version), orUnknown(revision), runtime.Version()).Set(1)
	m.registry.MustRegister(build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "nats_connected", Help: "1 while natsse's NATS connection is up."},
			func() float64 { return boolGauge(o.natsConnected()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "natsse", Name: "nats_reconnects_total", Help: "Times natsse's NATS connection reconnected (to the same or another server)."},
			func() float64 { return float64(o.reconnects()) }),
		&streamGauges{streams: o.streams},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "connections_open", Help: "Open client connections, streams included."},
			func() float64 { return float64(connsOpen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "streams_open", Help: "Open SSE streams."},
			func() float64 { return float64(streamsOpen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "ready", Help: "1 while /readyz answers 200."},
			func() float64 { return boolGauge(ready()) }),
	)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// streamGauges are the gauges of each served stream, read when scraped.
type streamGauges struct {
	streams func() []*servedStream
}

var (
	lagDesc = prometheus.NewDesc("natsse_upstream_lag_events",
		"Each stream's last sequence (read every second) less the last one natsse received: how far its upstream trails (0 while it has no upstream consumer).", []string{"stream"}, nil)
	consumingDesc = prometheus.NewDesc("natsse_upstream_consuming",
		"1 while natsse holds an upstream consumer on the stream: it has readers on this replica, or had within NATSSE_UPSTREAM_IDLE.", []string{"stream"}, nil)
)

func (g *streamGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- consumingDesc
}

func (g *streamGauges) Collect(ch chan<- prometheus.Metric) {
	for _, st := range g.streams() {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(st.upstream.Lag()), st.name)
		ch <- prometheus.MustNewConstMetric(consumingDesc, prometheus.GaugeValue, boolGauge(st.upstream.Consuming()), st.name)
	}
}
